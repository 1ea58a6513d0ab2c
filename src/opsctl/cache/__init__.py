"""Cache and rate-limit operations on Redis: the TTL audit, invalidation, rate-limit counters."""
