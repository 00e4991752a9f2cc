"""Outlets for triggered decisions (`decisioning.triggers.DeliveryOutlet`): a Redis Stream, an in-process
queue (the embedded mode), a signed webhook with retries, and the fan-out that combines them."""
