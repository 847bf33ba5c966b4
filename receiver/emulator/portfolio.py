"""The emulator's demo portfolio: partner accounts and their sites, derived from a seed.

Partner account 1 owns sites 1…N, partner account 2 owns site N+1 (so ownership errors
can be exercised), and partner account 3 exists without any site (30086 Partner
Account Sites Not Found). Names, places and battery ratings are plausible and
deterministic: the same seed and size always give the same portfolio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from receiver.emulator.state import SiteSpec

MAIN_PARTNER = 1
OTHER_PARTNER = 2
PARTNER_WITHOUT_SITES = 3

# (city, country, latitude, longitude): European places a battery site could stand in.
_PLACES: tuple[tuple[str, str, float, float], ...] = (
    ("Hamburg", "Germany", 53.5511, 9.9937),
    ("Bremen", "Germany", 53.0793, 8.8017),
    ("Leipzig", "Germany", 51.3397, 12.3731),
    ("Hannover", "Germany", 52.3759, 9.7320),
    ("Dortmund", "Germany", 51.5136, 7.4653),
    ("Rostock", "Germany", 54.0924, 12.0991),
    ("Kiel", "Germany", 54.3233, 10.1228),
    ("Magdeburg", "Germany", 52.1205, 11.6276),
    ("Graz", "Austria", 47.0707, 15.4395),
    ("Linz", "Austria", 48.3069, 14.2858),
    ("Basel", "Switzerland", 47.5596, 7.5886),
    ("Groningen", "Netherlands", 53.2194, 6.5665),
    ("Eindhoven", "Netherlands", 51.4416, 5.4697),
    ("Aarhus", "Denmark", 56.1629, 10.2039),
    ("Odense", "Denmark", 55.4038, 10.4024),
    ("Malmö", "Sweden", 55.6050, 13.0038),
    ("Gdańsk", "Poland", 54.3520, 18.6466),
    ("Poznań", "Poland", 52.4064, 16.9252),
    ("Brno", "Czechia", 49.1951, 16.6068),
    ("Ghent", "Belgium", 51.0543, 3.7174),
    ("Lille", "France", 50.6292, 3.0573),
    ("Lyon", "France", 45.7640, 4.8357),
    ("Turin", "Italy", 45.0703, 7.6869),
    ("Bilbao", "Spain", 43.2630, -2.9350),
)
_KINDS = ("Power Plant", "Energy Park", "Storage Hub", "Grid Battery", "Solar Storage")
# The demo's boxes taper their power over the last 5 points of SoC before each limit
# (95 % full, 5 % empty): from 90 % and from 10 % (receiver.emulator.battery).
TAPER_PCT = 5.0
# (capacity kWh, rated charge kW, rated discharge kW): common commercial sizes.
_SIZES: tuple[tuple[float, float, float], ...] = (
    (300.0, 150.0, 250.0),
    (500.0, 250.0, 250.0),
    (1000.0, 500.0, 500.0),
    (2000.0, 1000.0, 1000.0),
    (200.0, 100.0, 120.0),
    (750.0, 300.0, 375.0),
)


@dataclass(frozen=True)
class Portfolio:
    """Every site of the emulated cloud (by id), and the partner accounts that exist."""

    sites: dict[int, SiteSpec]
    partners: frozenset[int]

    def sites_of(self, partner_id: int) -> list[SiteSpec]:
        return [spec for spec in self.sites.values() if spec.partner_id == partner_id]


def _site(site_id: int, partner_id: int, rng: random.Random) -> SiteSpec:
    city, country, latitude, longitude = rng.choice(_PLACES)
    capacity, charge, discharge = rng.choice(_SIZES)
    return SiteSpec(
        site_id=site_id,
        partner_id=partner_id,
        name=f"{city} {rng.choice(_KINDS)} {site_id}",
        country=country,
        # Spread sites of one city over a few kilometres so map pins do not coincide.
        latitude=round(latitude + rng.uniform(-0.05, 0.05), 6),
        longitude=round(longitude + rng.uniform(-0.05, 0.05), 6),
        capacity_kwh=capacity,
        rated_charge_kw=charge,
        rated_discharge_kw=discharge,
        initial_soc_pct=round(rng.uniform(30.0, 70.0), 1),
        taper_pct=TAPER_PCT,
    )


def demo_portfolio(sites: int = 5, seed: int = 1) -> Portfolio:
    """Partner 1 owns sites 1…`sites`, partner 2 site `sites`+1, partner 3 none."""
    if sites < 0:
        raise ValueError("sites must be >= 0")
    rng = random.Random(seed)
    specs = [_site(site_id, MAIN_PARTNER, rng) for site_id in range(1, sites + 1)]
    specs.append(_site(sites + 1, OTHER_PARTNER, rng))
    partners = frozenset({MAIN_PARTNER, OTHER_PARTNER, PARTNER_WITHOUT_SITES})
    return Portfolio(sites={spec.site_id: spec for spec in specs}, partners=partners)
