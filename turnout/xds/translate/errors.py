"""The one exception `turnout.xds.translate` raises.

    TurnoutError            (models.errors)
     └── TranslationError   the declaration cannot become a consistent set of Envoy resources

The ADS side catches it, keeps serving the last good snapshot and reports the
message; it never reaches a proxy.
"""

from turnout.models.errors import TurnoutError


class TranslationError(TurnoutError):
    """Resources would be rejected by Envoy or point at something that does not exist."""
