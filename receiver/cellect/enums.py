"""Enumerations of the Cellect Partner API (guide 1.0.1, "Specific Range of Data Fields")."""

from enum import IntEnum, StrEnum


class ImplementationStatus(IntEnum):
    """The fate of one schedule entry, as reported by webhook and time-series reads."""

    IN_PROGRESS = 1
    IMPLEMENTED = 2
    IMPLEMENTATION_FAILED = 3
    DELETED = 4
    OVERWRITTEN = 5

    @property
    def rank(self) -> int:
        """Order in which statuses may follow each other: 1 → 2/3 → 4/5."""
        return {1: 0, 2: 1, 3: 1, 4: 2, 5: 2}[self.value]


class EventReason(IntEnum):
    NO_REASON = 1
    EXTERNAL_FACTOR = 2
    MAINTENANCE = 3
    OUTAGE = 4
    OTHER = 5


class EventSource(IntEnum):
    CELLECT = 1
    ESS = 2
    SYSTEM_BMS = 3
    INVERTER = 4


class AvailabilityStatus(IntEnum):
    AVAILABLE = 1
    NOT_AVAILABLE = 2


class DowntimeType(StrEnum):
    PLANNED = "Planned"
    UNPLANNED = "Unplanned"


class Symbol(StrEnum):
    """Values of the `symbol` query parameter."""

    ESS_POWER_AC = "EssPowerAC"
    EX_ANTE = "ExAnteInformationEssPowerAC"
    EX_POST = "ExPostInformationEssPowerAC"
    SITE_INFORMATION = "SiteInformation"
    PORTFOLIO_OVERVIEW = "PortfolioOverview"
    AVAILABILITY = "Availability"


# Symbols the guide names for one operation but that this API version does not serve
# there; asking for them is 30019 (Symbol Not Implemented) rather than 30018 (Invalid).
KNOWN_SYMBOLS = frozenset(s.value for s in Symbol)
