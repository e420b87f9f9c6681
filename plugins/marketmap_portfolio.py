"""Airflow plugin: the Market Map portfolio pages in the Airflow UI.

Thin on purpose: the FastAPI app lives in ``marketmap.orchestration.portfolio_app``. It is mounted under
``/marketmap`` in Airflow's api-server (behind Airflow's authentication) and linked from the
UI's navigation; the page itself is embedded by the UI at ``/plugin/marketmap-portfolio``.
"""

from airflow.plugins_manager import AirflowPlugin

from marketmap.orchestration.portfolio_app import PREFIX, create_app


class MarketMapPortfolioPlugin(AirflowPlugin):
    """Portfolio page (every client's health) and per-client report pages."""

    name = "marketmap_portfolio"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "Market Map portfolio"}]
    external_views = [
        {
            "name": "Market Map portfolio",
            "href": f"{PREFIX}/portfolio",
            "destination": "nav",
            "category": "browse",
            "url_route": "marketmap-portfolio",
        }
    ]
