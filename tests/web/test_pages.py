"""The web page in a real headless Chromium against a real uvicorn and PostgreSQL: sign-in and its cookie, what a
viewer and an admin see and may do, every page without a console error at a desktop's and a phone's width, and
every chart drawing exactly the numbers the API serves for the same parameters (read back from Chart.js)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.web.conftest import END_PARAM, SHOTS, Site, Tab

GIB = 2**30
DAY_MS = 86_400_000
PAGES = ("/", "/utilization", "/forecast", "/rightsize", "/chargeback")
#: Pages as the screenshots show them: the test data's window, which ends at END.
PINNED = {
    "overview": "/",
    "utilization": f"/utilization?days=7&to={END_PARAM}",
    "forecast": f"/forecast?days=10&to={END_PARAM}",
    "rightsize": f"/rightsize?days=10&to={END_PARAM}",
    "chargeback": f"/chargeback?days=10&to={END_PARAM}",
}

# --- signing in ------------------------------------------------------------------------------------------------


def test_a_page_without_a_cookie_goes_to_the_login_form(anonymous: Tab) -> None:
    anonymous.go("/forecast?days=10")
    assert anonymous.page.url.endswith("/login?next=%2Fforecast%3Fdays%3D10")
    assert anonymous.page.locator("input[name=token]").is_visible()
    assert anonymous.problems == []


def test_a_wrong_token_gets_the_form_again_with_one_line_of_error(anonymous: Tab) -> None:
    anonymous.go("/login")
    anonymous.page.fill("input[name=token]", "cm_not-a-token")
    with anonymous.page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as posted:
        anonymous.page.click("button[type=submit]")
    assert posted.value.status == 200
    error = anonymous.page.locator(".login .error")
    assert error.inner_text() == (
        "That token is unknown or revoked; ask an administrator for a live one (cloudmeter tokens list)."
    )
    assert anonymous.page.locator("input[name=token]").is_visible()
    assert "cm_not-a-token" not in anonymous.page.content()
    assert anonymous.context.cookies() == []
    assert anonymous.problems == []


def test_login_keeps_the_token_in_an_httponly_strict_cookie_and_logout_clears_it(anonymous: Tab, site: Site) -> None:
    anonymous.go("/chargeback?days=10")
    anonymous.page.fill("input[name=token]", site.viewer)
    anonymous.page.click("button[type=submit]")
    anonymous.page.wait_for_load_state("load")
    assert anonymous.page.url.endswith("/chargeback?days=10")  # back where the user wanted to go
    [cookie] = anonymous.context.cookies()
    assert (cookie["name"], cookie["value"], cookie["path"]) == ("cloudmeter_token", site.viewer, "/")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http here; over https it is Secure (the next test)
    assert anonymous.page.evaluate("document.cookie") == ""  # no script can read it
    assert site.viewer not in anonymous.page.content()
    anonymous.page.click("text=Log out")
    anonymous.page.wait_for_load_state("load")
    assert anonymous.page.url.endswith("/login")
    assert anonymous.context.cookies() == []
    anonymous.go("/")
    assert "/login" in anonymous.page.url
    assert anonymous.problems == []


def test_the_cookie_is_secure_over_https(site: Site) -> None:
    """Behind a TLS proxy (which says so in X-Forwarded-Proto) the cookie is also Secure."""
    answer = httpx.post(
        f"{site.url}/login",
        data={"token": site.viewer},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "meter.example", "Origin": "https://meter.example"},
    )
    assert answer.status_code == 303
    flags = {part.strip().lower() for part in answer.headers["set-cookie"].split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags


def test_a_login_posted_from_another_site_is_refused(site: Site) -> None:
    answer = httpx.post(f"{site.url}/login", data={"token": site.viewer}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_after_login_only_a_path_of_this_server_is_followed(site: Site) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        answer = httpx.post(f"{site.url}/login", data={"token": site.viewer, "next": target})
        assert (answer.status_code, answer.headers["location"]) == (303, "/")


# --- roles -----------------------------------------------------------------------------------------------------


def test_a_viewer_sees_no_admin_action_and_posting_one_is_forbidden(viewer: Tab) -> None:
    viewer.go("/")
    assert viewer.page.locator('td:text-is("sim")').count() == 1
    assert viewer.page.locator("button[data-action]").count() == 0
    assert "/api/v1/managers/" not in viewer.page.content()
    for action in ("disable", "enable", "refresh"):
        answer = viewer.context.request.post(f"/api/v1/managers/sim/{action}", headers={"X-Cloudmeter-Action": "1"})
        assert answer.status == 403, action
    assert viewer.problems == []


def test_an_admin_enables_and_disables_a_manager_with_the_buttons(admin: Tab) -> None:
    admin.go("/")
    row = admin.page.locator("tr", has_text="spare")
    assert row.locator("button", has_text="Refresh").count() == 1
    assert row.locator(".state").inner_text() == "disabled"
    with admin.page.expect_response(lambda r: r.url.endswith("/api/v1/managers/spare/enable")) as answer:
        row.locator("button", has_text="Enable").click()
    assert answer.value.status == 200
    assert answer.value.request.headers["x-cloudmeter-action"] == "1"
    admin.page.wait_for_load_state("load")
    admin.page.locator("tr", has_text="spare").locator("button", has_text="Disable").wait_for()
    assert admin.page.locator("tr", has_text="spare").locator(".state").inner_text() == "new"
    with admin.page.expect_response(lambda r: r.url.endswith("/api/v1/managers/spare/disable")) as answer:
        admin.page.locator("tr", has_text="spare").locator("button", has_text="Disable").click()
    assert answer.value.status == 200
    admin.page.locator("tr", has_text="spare").locator("button", has_text="Enable").wait_for()
    assert admin.problems == []


def test_a_change_sent_with_the_cookie_but_without_the_pages_header_is_refused(admin: Tab) -> None:
    admin.go("/")
    answer = admin.context.request.post("/api/v1/managers/spare/disable")  # the admin's cookie, no header
    assert answer.status == 403 and "X-Cloudmeter-Action" in answer.text()
    assert admin.page.locator("tr", has_text="spare").locator(".state").inner_text() == "disabled"


def test_another_sites_form_cannot_act_with_the_cookie(anonymous: Tab, site: Site) -> None:
    """Cross-site request forgery: a page of another site posts a form to an admin action while an admin is signed
    in. The SameSite=Strict cookie stays home, so the API sees no token (401) and nothing changes."""
    anonymous.go("/login")
    anonymous.page.fill("input[name=token]", site.admin)
    anonymous.page.click("button[type=submit]")
    anonymous.page.wait_for_load_state("load")
    assert anonymous.page.locator("tr", has_text="spare").locator(".state").inner_text() == "disabled"
    attack = f"""<form method="post" action="{site.url}/api/v1/managers/spare/enable"></form>
                 <script>document.forms[0].submit()</script>"""
    anonymous.context.route(
        "http://attacker.test/**", lambda route: route.fulfill(body=attack, content_type="text/html")
    )
    with anonymous.page.expect_response(lambda r: r.url.endswith("/managers/spare/enable")) as answer:
        anonymous.page.goto("http://attacker.test/")
    assert answer.value.status == 401
    assert "cookie" not in answer.value.request.headers
    status = anonymous.context.request.get(f"{site.url}/api/v1/status").json()
    assert {m["name"]: m["enabled"] for m in status["managers"]}["spare"] is False


# --- every page, both widths -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PINNED))
def test_every_page_loads_without_errors_and_fits_the_width(admin_at_width: Tab, site: Site, name: str) -> None:
    tab = admin_at_width
    assert tab.go(PINNED[name]) == 200
    width = tab.page.viewport_size["width"] if tab.page.viewport_size else 0
    assert tab.problems == []
    assert tab.page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    cut = tab.page.evaluate(
        """() => [...document.querySelectorAll('.table-wrap')].filter(t => t.offsetParent !== null)
               .filter(t => t.scrollWidth > t.clientWidth + 1).map(t => t.scrollWidth - t.clientWidth)"""
    )
    assert cut == [], "a table is wider than the page (the columns a phone leaves out: wide-only)"
    drawn = tab.page.evaluate(
        """() => [...document.querySelectorAll('canvas')].map(c => {
               const chart = Chart.getChart(c);
               return {id: c.id, chart: !!chart, width: c.clientWidth, height: c.clientHeight,
                       points: chart ? chart.data.datasets.reduce((n, d) => n + d.data.length, 0) : 0};
           })"""
    )
    if name != "overview":
        assert drawn, "no chart"
    for canvas in drawn:
        assert canvas["chart"] and canvas["points"] > 0, canvas
        assert canvas["height"] >= 150 and 200 <= canvas["width"] <= width, canvas
    assert site.admin not in tab.page.content() and site.viewer not in tab.page.content()
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)


@pytest.mark.parametrize("path", PAGES)
def test_a_window_without_data_says_no_data_not_zero(viewer: Tab, path: str) -> None:
    """A window before the test data: every page says so, and no chart draws a 0."""
    assert viewer.go(f"{path}?to=2026-01-01") == 200
    assert viewer.problems == []
    if path != "/":
        assert viewer.page.locator(".nodata").count() >= 1
        datasets = _datasets(viewer)
        assert all(point is None or _y(point) is None for d in datasets.values() for s in d for point in s["data"])


def test_the_login_page_at_both_widths(anonymous: Tab) -> None:
    anonymous.go("/login")
    anonymous.page.fill("input[name=token]", "wrong")
    anonymous.page.click("button[type=submit]")
    anonymous.page.wait_for_load_state("load")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        anonymous.page.set_viewport_size({"width": width, "height": 700})
        assert anonymous.page.evaluate("document.documentElement.scrollWidth") <= width
        anonymous.page.screenshot(path=str(SHOTS / f"login-{width}.png"), full_page=True)


def test_a_bad_parameter_shows_the_page_with_the_reason(viewer: Tab) -> None:
    assert viewer.go("/utilization?level=rack") == 422
    assert "--level 'rack' is not one of host, cluster, provider" in viewer.page.locator(".flash.error").inner_text()
    assert viewer.go("/forecast?from=yesterday") == 422
    assert "is not an ISO 8601 date or time" in viewer.page.locator(".flash.error").inner_text()
    assert [p for p in viewer.problems if "422" not in p] == []


# --- the charts draw the API's numbers -------------------------------------------------------------------------


def _datasets(tab: Tab) -> dict[str, list[dict[str, Any]]]:
    """Every chart's datasets as Chart.js holds them, by canvas id (``chart-...``)."""
    found: dict[str, list[dict[str, Any]]] = tab.page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
               const chart = Chart.getChart(c);
               return [c.id, chart.data.datasets.map(d => ({label: d.label, data: d.data}))
                   .concat(chart.data.labels && chart.data.labels.length ? [{label: '$labels',
                   data: chart.data.labels}] : [])];
           }))"""
    )
    return found


def _y(point: Any) -> Any:
    return point["y"] if isinstance(point, dict) else point


def _api(tab: Tab, path: str, **params: Any) -> Any:
    answer = tab.context.request.get(f"/api/v1/{path}?{urlencode(params)}")
    assert answer.ok, answer.text()
    return answer.json()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _day_ms(iso: str) -> int:
    day = date.fromisoformat(iso[:10])
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _by_label(datasets: Iterable[dict[str, Any]]) -> dict[str, list[Any]]:
    return {d["label"]: d["data"] for d in datasets}


def test_utilization_charts_draw_the_apis_hourly_rows_and_capacity(viewer: Tab) -> None:
    window = {"days": 7, "to": END_PARAM}
    viewer.go("/utilization?" + urlencode(window))
    charts = _datasets(viewer)
    report = _api(viewer, "capacity/utilization", level="cluster", **window)
    rows = _api(viewer, "rollups", level="cluster", interval="hourly", limit=10000, **window)["rows"]
    assert {r["cluster"] for r in report} == {"sim-cluster-0", "sim-cluster-1"}
    ids = {r["name"]: r["resource_id"] for r in rows}
    assert len(charts) == 4
    for cluster in report:
        mine = [r for r in rows if r["name"] == cluster["cluster"]]
        cpu = _by_label(charts[f"chart-cpu-{ids[cluster['cluster']]}"])
        mem = _by_label(charts[f"chart-mem-{ids[cluster['cluster']]}"])
        hours = [p["x"] for p in cpu["busy cores (hourly average)"]]
        assert len(hours) == 7 * 24 and hours == sorted(hours)
        expected_used = {_ms(r["ts"]): r["cpu_used_cores_avg"] for r in mine}
        assert {p["x"]: p["y"] for p in cpu["busy cores (hourly average)"]} == {x: expected_used.get(x) for x in hours}
        assert {p["x"]: p["y"] for p in cpu["busiest sample in the hour"]} == {
            x: {_ms(r["ts"]): r["cpu_used_cores_max"] for r in mine}.get(x) for x in hours
        }
        assert {p["x"]: p["y"] for p in mem["memory used (hourly average)"]} == {
            x: {_ms(r["ts"]): r["mem_used_bytes_avg"] / GIB for r in mine}.get(x) for x in hours
        }
        # capacity and allocation: the report's figures at the window's last hour
        assert cpu["capacity (hosts' vCPUs)"][-1]["y"] == cluster["vcpus_capacity"]
        assert cpu["vCPUs allocated"][-1]["y"] == cluster["vcpus_allocated"]
        assert mem["capacity (hosts' memory)"][-1]["y"] == cluster["mem_gb_capacity"]
        assert mem["memory allocated"][-1]["y"] == cluster["mem_gb_allocated"]
        assert all(p["y"] is not None for p in cpu["capacity (hosts' vCPUs)"])
    table = viewer.page.locator("table tbody tr")
    assert table.count() == 2 and "99." in table.first.inner_text()  # coverage shown


def test_hours_before_the_data_are_gaps_and_the_coverage_says_so(viewer: Tab) -> None:
    """A window of 12 days over 10 days of data: the first two days are gaps (null), not zeros, and a note says
    how much of the window the data covers."""
    viewer.go(f"/utilization?days=12&to={END_PARAM}")
    assert viewer.problems == []
    note = viewer.page.locator(".notes li").inner_text()
    assert note.startswith("The data covers 10.0 of the window's 12.0 days")
    for canvas, datasets in _datasets(viewer).items():
        for dataset in datasets:
            values = [p["y"] for p in dataset["data"]]
            assert len(values) == 12 * 24
            assert values[: 2 * 24] == [None] * 48, (canvas, dataset["label"])
            assert any(v is not None for v in values[2 * 24 :]), (canvas, dataset["label"])


def test_forecast_charts_draw_the_apis_peaks_fit_bounds_and_exhaustion_day(viewer: Tab) -> None:
    params = {"days": 10, "to": END_PARAM, "limit": 90}
    viewer.go("/forecast?" + urlencode(params))
    charts = _datasets(viewer)
    forecast = _api(viewer, "capacity/forecast", **params)
    daily = _api(viewer, "rollups", level="cluster", interval="daily", tz="UTC", days=10, to=END_PARAM)["rows"]
    linear = [r for r in forecast if r["method"] == "linear"]
    assert len(linear) == len(charts) == 4
    crossings = 0
    for index, row in enumerate(linear):
        lines = _by_label(charts[f"chart-forecast-{index}"])
        column, unit = ("cpu_used_cores_max", 1) if row["resource"] == "cpu" else ("mem_used_bytes_max", GIB)
        peaks = {_day_ms(r["ts"]): r[column] / unit for r in daily if r["name"] == row["cluster"]}
        assert {p["x"]: p["y"] for p in lines["daily peak"] if p["y"] is not None} == peaks
        limit = lines["limit (90% of capacity)"]
        assert [p["y"] for p in limit] == [row["target"], row["target"]]
        first, last = date.fromisoformat(row["first_day"]), date.fromisoformat(row["last_day"])
        fit = lines["linear fit"]
        history = (last - first).days
        assert fit[0] == {"x": _day_ms(row["first_day"]), "y": row["fitted_peak"] - row["trend_per_day"] * history}
        slope = (fit[1]["y"] - fit[0]["y"]) / ((fit[1]["x"] - fit[0]["x"]) / DAY_MS)
        assert slope == pytest.approx(row["trend_per_day"], rel=1e-9)
        spread = 1.96 * row["trend_stderr"]
        for label, sign in (("95% bound, earliest", 1), ("95% bound, latest", -1)):
            bound = lines[label]
            assert bound[0] == fit[0]
            bound_slope = (bound[1]["y"] - bound[0]["y"]) / ((bound[1]["x"] - bound[0]["x"]) / DAY_MS)
            assert bound_slope == pytest.approx(row["trend_per_day"] + sign * spread, rel=1e-9)
        marker = f"limit reached {row['exhaustion_date']}"
        if row["exhaustion_date"] is None:
            assert not any(label.startswith("limit reached") for label in lines)
            continue
        crossings += 1
        assert {p["x"] for p in lines[marker]} == {_day_ms(row["exhaustion_date"])}
        assert fit[1]["y"] == pytest.approx(row["target"], rel=1e-9)  # the fit is drawn to where it crosses
        assert (fit[1]["x"] - fit[0]["x"]) / DAY_MS == pytest.approx(history + row["days_to_exhaustion"], rel=1e-9)
    assert crossings >= 1, "the test data should have a forecast that reaches its limit"


def test_the_rightsize_chart_draws_the_apis_top_savings(viewer: Tab) -> None:
    params = {"days": 10, "to": END_PARAM}
    viewer.go("/rightsize?" + urlencode({**params, "top": 12}))
    bars = _by_label(_datasets(viewer)["chart-savings"])
    report = _api(viewer, "capacity/rightsize", sort="-monthly_savings", **params)
    candidates = [r for r in report if r["action"] in ("idle", "downsize")][:12]
    assert len(candidates) == 12
    assert bars["$labels"] == [r["name"] for r in candidates]
    for action in ("idle", "downsize"):
        assert bars[action] == [float(r["monthly_savings"]) if r["action"] == action else None for r in candidates]
    assert viewer.page.locator("table tbody tr").count() == 12


def test_the_chargeback_chart_stacks_the_apis_costs_per_project(viewer: Tab) -> None:
    params = {"days": 10, "to": END_PARAM, "interval": "weekly", "group_by": "project"}
    viewer.go("/chargeback?" + urlencode(params))
    bars = _by_label(_datasets(viewer)["chart-chargeback"])
    report = _api(viewer, "chargeback", **params)
    rows = report["rows"] if isinstance(report, dict) else report
    periods = sorted({r["period_start"] for r in rows})
    labels = bars.pop("$labels")

    def label(row: dict[str, Any]) -> Any:  # two lines (project, week) when the window spans several weeks
        return row["project"] if len(periods) == 1 else [row["project"], row["period_start"][:10]]

    labels = [tuple(x) if isinstance(x, list) else x for x in labels]
    assert len(periods) >= 2
    assert sorted(labels) == sorted({_hashable(label(r)) for r in rows})
    assert sorted(bars) == sorted({f"{r['line']} ({r['component']})" for r in rows})
    drawn = {(name, labels[i]): v for name, values in bars.items() for i, v in enumerate(values) if v is not None}
    assert drawn == {(f"{r['line']} ({r['component']})", _hashable(label(r))): float(r["cost"]) for r in rows}


def test_the_overview_shows_the_apis_managers(viewer: Tab) -> None:
    viewer.go("/")
    status = _api(viewer, "status")
    shown = viewer.page.locator("table tbody tr")
    assert [shown.nth(i).locator("td").first.inner_text() for i in range(shown.count())] == [
        m["name"] for m in status["managers"]
    ]
    assert [shown.nth(i).locator(".state").inner_text() for i in range(shown.count())] == [
        m["state"] for m in status["managers"]
    ]
