"""URL paths of the Cellect Partner API (docs/decisions.md: token service and resources, `/v1`)."""

ACCESS_TOKEN = "/v1/access-token"
PORTFOLIO_MASTER_DATA = "/v1/resources/sites/master-data"


def time_series(site_id: int | str) -> str:
    return f"/v1/resources/sites/{site_id}/time-series"


def master_data(site_id: int | str) -> str:
    return f"/v1/resources/sites/{site_id}/master-data"


def events(site_id: int | str) -> str:
    return f"/v1/resources/sites/{site_id}/events"
