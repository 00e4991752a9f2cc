"""Feature stores: customer features and history summaries (in process and Redis), volume budgets,
real-time event features and the feature-file loaders. See docs/cache.md for the Redis layout and TTLs."""
