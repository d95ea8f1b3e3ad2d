"""Rate limit requests as Envoy's ratelimit filter sends them, for the tests."""

from envoy.extensions.common.ratelimit.v3.ratelimit_pb2 import RateLimitDescriptor
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest


def request(*descriptors: dict[str, str], hits: int = 0) -> RateLimitRequest:
    return RateLimitRequest(
        domain="turnout",
        hits_addend=hits,
        descriptors=[
            RateLimitDescriptor(
                entries=[RateLimitDescriptor.Entry(key=k, value=v) for k, v in d.items()]
            )
            for d in descriptors
        ],
    )
