"""A global calls-per-second limit for meter-event calls to Stripe.

A token bucket (rate ``USAGE_REPORT_MAX_CALLS_PER_SECOND``, burst of one second's worth)
shared by every worker through Redis when ``REDIS_URL`` is set, else per process.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

REDIS_KEY = "meterdesk:usage:stripe-meter-events:bucket"

# Returns the seconds to wait (as a string: Lua numbers become integers otherwise);
# "0" means a token was taken. Redis' own clock, so workers' clocks do not matter.
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 60)
return tostring(wait)
"""


class LocalBucket:
    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()
        self.lock = threading.Lock()

    def try_take(self) -> float:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate

    def acquire(self) -> None:
        while (wait := self.try_take()) > 0:
            time.sleep(wait)


class RedisBucket:
    def __init__(self, url: str, rate: float, burst: float | None = None, key: str = REDIS_KEY):
        import redis

        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_LUA)
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self.key = key

    def try_take(self) -> float:
        return float(self.script(keys=[self.key], args=[self.rate, self.burst]))

    def acquire(self) -> None:
        while (wait := self.try_take()) > 0:
            time.sleep(wait)


_local: LocalBucket | None = None


def report_limiter():
    """The limiter configured by settings (a new Redis handle, or the process bucket)."""
    global _local
    rate = settings.USAGE_REPORT_MAX_CALLS_PER_SECOND
    if settings.REDIS_URL:
        return RedisBucket(settings.REDIS_URL, rate)
    if _local is None or _local.rate != rate:
        _local = LocalBucket(rate)
    return _local
