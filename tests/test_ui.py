"""The web UI: its JSON API, access rules, and an end-to-end run in headless Chromium."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import strikes as dn
from strikes._values import MetricPoint

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

import anyio  # noqa: E402 - after the skip checks

from strikes.ui.server import create_app, downsample, is_loopback, serve  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get(
        "STRIKES_TEST_ARTIFACTS", Path(__file__).parent.parent / "build" / "test-artifacts"
    )
)


def _boom() -> None:
    raise RuntimeError("judge crashed")


@pytest.fixture
def runs(store: dn.Store) -> dn.Store:
    """Two finished runs and a failed one, with tasks, values, scores and a large input."""
    for name, lr in (("train-fast", 0.1), ("train-slow", 0.01)):
        with dn.run(name, project="demo", tags=["sweep"]):
            dn.log_params(lr=lr)
            for step in range(50):
                dn.log_metric("loss", 1 / (1 + lr * step), step=step)
            with dn.task_span("evaluate", label="eval"):
                dn.log_input("question", "what is 2+2?")
                dn.log_output("answer", "4")
                dn.log_metric("score", 1.0)
                dn.log_input("context", "x" * 10_000)
    try:
        with dn.run("judge-run", project="demo"):
            with dn.task_span("judge"):
                _boom()
    except RuntimeError:
        pass
    return store


class AppClient:
    """A synchronous client that calls the ASGI app in-process (cookies kept between calls)."""

    def __init__(self, app: object, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self.cookies = httpx.Cookies()

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url=self.base_url, cookies=self.cookies
            ) as client:
                response = await client.get(path, **kwargs)
                self.cookies.update(client.cookies)
                await response.aread()
                return response

        return anyio.run(call)


@pytest.fixture
def client(runs: dn.Store) -> AppClient:
    """A client of the UI over the test store, as served on localhost."""
    return AppClient(create_app(runs), base_url="http://127.0.0.1")


class TestApi:
    def test_run_list_with_filters(self, client: AppClient) -> None:
        """/api/runs lists runs newest first and takes status and name filters."""
        data = client.get("/api/runs").json()
        assert [r["name"] for r in data] == ["judge-run", "train-slow", "train-fast"]
        assert data[1]["params"] == {"lr": 0.01}
        assert data[1]["metrics"]["loss"]["count"] == 50
        failed = client.get("/api/runs", params={"status": "failed"}).json()
        assert [r["name"] for r in failed] == ["judge-run"]
        named = client.get("/api/runs", params={"name": "train-*"}).json()
        assert len(named) == 2

    def test_bad_filter_is_400(self, client: AppClient) -> None:
        """A bad filter value answers 400 with the reason."""
        response = client.get("/api/runs", params={"limit": "-3"})
        assert response.status_code == 400
        assert "limit" in response.json()["error"]

    def test_run_detail_has_task_tree_values_and_errors(self, client: AppClient) -> None:
        """/api/runs/{name} returns params, tasks with inputs, outputs, scores and errors."""
        detail = client.get("/api/runs/train-fast").json()
        (task,) = detail["tasks"]
        assert task["name"] == "evaluate"
        assert task["inputs"]["question"] == "what is 2+2?"
        assert task["inputs"]["context"] == "x" * 10_000  # stored as an object, loaded back
        assert task["outputs"] == {"answer": "4"}
        assert task["scores"] == {"score": 1.0}
        assert "eval.score" in detail["metric_names"]
        provenance = detail["provenance"]  # where the run came from, captured fields only
        assert provenance["python_version"] == platform.python_version()
        assert provenance["hostname"] == socket.gethostname()
        assert provenance["packages"] > 0
        failed = client.get("/api/runs/judge-run").json()
        (judge,) = failed["tasks"]
        assert judge["status"] == "failed"
        assert judge["errors"][0]["message"] == "judge crashed"
        assert "Traceback" in judge["errors"][0]["traceback"]

    def test_metric_series(self, client: AppClient) -> None:
        """/api/runs/{id}/metrics returns step, time and value arrays per metric."""
        data = client.get("/api/runs/train-fast/metrics", params={"name": "loss"}).json()
        series = data["series"]["loss"]
        assert series["step"] == list(range(50))
        assert series["value"][0] == 1.0
        assert len(series["time"]) == 50
        assert list(data["series"]) == ["loss"]
        small = client.get("/api/runs/train-fast/metrics", params={"points": "5"}).json()
        assert len(small["series"]["loss"]["step"]) <= 11

    def test_unknown_run_is_404(self, client: AppClient) -> None:
        """An unknown run answers 404 with a JSON error."""
        response = client.get("/api/runs/nothing-here")
        assert response.status_code == 404
        assert "error" in response.json()

    def test_objects_by_hash_only(self, client: AppClient, runs: dn.Store) -> None:
        """Objects are served by their hash; anything else is 404, never a file outside."""
        stored = next(p for p in runs.layout.objects.rglob("*") if p.is_file())
        response = client.get(f"/api/objects/{stored.name}")
        assert response.status_code == 200
        assert response.content == stored.read_bytes()
        for bad in ("..%2F..%2Fmanifest.json", "0" * 64, "../../etc/passwd", "%2Fetc%2Fpasswd"):
            assert client.get(f"/api/objects/{bad}").status_code == 404

    def test_static_files_stay_in_the_package(self, client: AppClient) -> None:
        """The UI's files are served; paths that climb out of static/ are not."""
        assert client.get("/").status_code == 200
        assert "uPlot" in client.get("/static/uPlot.iife.min.js").text
        for bad in ("/static/../server.py", "/static/%2E%2E/server.py", "/static/..%2Fserver.py"):
            response = client.get(bad)
            assert response.status_code == 404
            assert "create_app" not in response.text


class TestAccess:
    def test_foreign_host_header_is_refused(self, runs: dn.Store) -> None:
        """Without a token only loopback Host headers are served (no DNS rebinding)."""
        client = AppClient(create_app(runs), base_url="http://evil.example")
        assert client.get("/api/runs").status_code == 400
        assert (
            AppClient(create_app(runs), base_url="http://localhost:7410").get("/").status_code
            == 200
        )

    def test_token_is_required_when_set(self, runs: dn.Store) -> None:
        """With a token, requests need it as a bearer header, a cookie, or a link parameter."""
        app = create_app(runs, token="s3cret")
        client = AppClient(app, base_url="http://192.0.2.10")
        assert client.get("/api/runs").status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert (
            client.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        )
        link = client.get("/?token=s3cret", follow_redirects=False)
        assert link.status_code == 303
        assert "token" not in link.headers["location"]
        assert client.get("/api/runs").status_code == 200  # the cookie set by the link

    def test_serve_refuses_public_address_without_token(self, runs: dn.Store) -> None:
        """serve() on a non-loopback address without a token raises before binding."""
        with pytest.raises(ValueError, match="token"):
            serve(runs, host="0.0.0.0")

    def test_loopback_detection(self) -> None:
        """127.0.0.0/8, ::1 and localhost are loopback; others are not."""
        assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
        assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "example.com", "::"))


class TestDownsample:
    def test_keeps_extremes_and_the_last_point(self) -> None:
        """Downsampling keeps each bucket's min and max, and the latest point."""
        points = [MetricPoint(float(i % 97), i, i) for i in range(10_000)]
        points[5_000] = MetricPoint(-50.0, 5_000, 5_000)
        kept = downsample(points, 100)
        assert len(kept) <= 201
        assert min(p.value for p in kept) == -50.0
        assert max(p.value for p in kept) == 96.0
        assert kept[-1] == points[-1]
        assert [p.step for p in kept] == sorted(p.step for p in kept)

    def test_short_series_unchanged(self) -> None:
        """A series shorter than the budget is returned as it is."""
        points = [MetricPoint(1.0, i, i) for i in range(10)]
        assert downsample(points, 100) == points


# -- end to end in a real browser ------------------------------------------------------


@pytest.fixture
def server(runs: dn.Store) -> Iterator[str]:
    """The UI served by uvicorn on a free loopback port, polling fast."""
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(runs, poll_seconds=0.25), log_level="warning", lifespan="off"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not instance.started:
            if not thread.is_alive():
                pytest.fail("the UI server did not start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright; skips when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.slow
class TestBrowser:
    def test_list_charts_tasks_and_live_updates(
        self, runs: dn.Store, server: str, browser: object
    ) -> None:
        """Filter, sort and select runs; overlaid charts; the task tree; a run updating live."""
        page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server)
        rows = page.locator("[data-testid=run-row]")
        rows.first.wait_for()
        assert rows.count() == 3

        # filter, then sort by name
        page.fill("[data-testid=filter]", "train")
        assert rows.count() == 2
        page.click("th[data-sort=name]")
        assert rows.nth(0).locator("td").nth(1).inner_text() == "train-fast"
        page.click("th[data-sort=name]")
        assert rows.nth(0).locator("td").nth(1).inner_text() == "train-slow"

        # select both: each metric chart overlays two runs (uPlot: x series + 2)
        boxes = page.locator("[data-testid=select-run]")
        boxes.nth(0).check()
        boxes.nth(1).check()
        loss = page.locator("[data-testid=chart][data-metric=loss]")
        loss.locator(".u-legend .u-series").nth(2).wait_for()
        assert loss.locator(".u-legend .u-series").count() == 3
        page.check("[data-testid=x-time]")
        page.locator(
            "[data-testid=chart][data-metric=loss] .u-legend .u-series >> text=time"
        ).wait_for()
        page.check("[data-testid=x-elapsed]")
        page.locator("[data-testid=chart][data-metric=loss] >> text=seconds since start").wait_for()

        # the task tree of the focused run shows inputs, outputs and scores
        rows.nth(0).click()
        evaluate = page.locator("[data-testid=task][data-task=evaluate]")
        evaluate.locator("summary").click()
        detail = page.locator("[data-testid=run-detail]")
        assert "what is 2+2?" in detail.inner_text()
        assert platform.python_version() in detail.locator("[data-testid=provenance]").inner_text()
        assert "score" in evaluate.inner_text()

        # a failed task shows its error
        page.fill("[data-testid=filter]", "judge")
        rows.first.click()
        page.locator("[data-testid=task][data-task=judge] summary").click()
        judge = page.locator("[data-testid=task][data-task=judge] [data-testid=error] strong")
        assert judge.inner_text() == "RuntimeError: judge crashed"

        # a run that is writing: it appears, its chart grows, and it finishes
        live = dn.run("live-run", project="demo")
        live.__enter__()
        try:
            dn.log_metric("reward", 1.0, step=0)
            dn.push_update()
            page.fill("[data-testid=filter]", "live")
            page.locator("[data-testid=run-row] >> text=live-run").wait_for()
            rows.first.click()
            page.locator("[data-testid=live]").wait_for(state="visible")
            for step in range(1, 20):
                dn.log_metric("reward", float(step), step=step)
            dn.push_update()
            page.locator("[data-testid=run-detail] td >> text=19").first.wait_for()
        finally:
            live.__exit__(None, None, None)
        page.locator("[data-testid=live]").wait_for(state="hidden")
        page.locator("[data-testid=run-detail] .status-finished").first.wait_for()

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.fill("[data-testid=filter]", "")
        page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
        assert (ARTIFACTS / "ui.png").stat().st_size > 10_000
        assert errors == []
