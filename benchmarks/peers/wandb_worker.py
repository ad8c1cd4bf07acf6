# ruff: noqa: PLC0415 - the library is imported in setup(), after its environment is set
"""Weights & Biases, offline (WANDB_MODE=offline): runs are written to ``DIR/wandb/offline-run-*``.

``run.log`` hands each row to the ``wandb-core`` service process, which appends it to the
run's ``.wandb`` file; ``run.finish()`` returns once the service has written everything.
W&B traces functions with Weave (``@weave.op``), which needs a W&B server and an API key
and has no offline mode (wandb/weave#3111): the traced-task and scored-eval workloads
cannot be run offline.
"""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import version
from typing import ClassVar

import _common

NO_WEAVE = (
    "W&B traces functions with Weave (@weave.op), which needs a W&B server and an API key; "
    "it has no offline mode (wandb/weave#3111)"
)


class WandbPeer:
    SUPPORT: ClassVar[dict[str, str]] = {"concurrent": "yes (run objects)"}
    UNSUPPORTED: ClassVar[dict[str, str]] = {"task": NO_WEAVE, "eval": NO_WEAVE}
    NOTES: ClassVar[dict[str, str]] = {
        "metrics": "run.log({'loss': v}, step=i) in wandb.init() (offline); "
        "durable after run.finish()",
        "concurrent": "wandb.init(reinit='create_new') per coroutine and that run object's "
        "run.log (the global wandb.log goes to the last run only)",
    }

    def version(self):
        return version("wandb")

    def setup(self, directory):
        os.environ.update(
            WANDB_MODE="offline",
            WANDB_DIR=str(directory),
            WANDB_SILENT="true",
            WANDB_CONSOLE="off",
            HOME=str(directory),
        )
        import wandb

        self.wandb = wandb
        self.settings = wandb.Settings(console="off", x_disable_stats=True)

    def _init(self, name):
        return self.wandb.init(
            project="bench", name=name, reinit="create_new", settings=self.settings
        )

    def metrics(self, n):
        run = self._init("metrics")
        log = run.log
        t0 = time.perf_counter()
        for i in range(n):
            log({"loss": 0.5}, step=i)
        t_logged = time.perf_counter()
        run.finish()
        return t0, t_logged, time.perf_counter()

    async def concurrent(self, runs, each, every):
        async def one(k):
            run = self._init(f"concurrent-{k}")
            for i in range(each):
                run.log({"loss": 0.5}, step=i)
                if i % every == every - 1:
                    await asyncio.sleep(0)
            run.finish()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(runs)))
        return t0, time.perf_counter()


if __name__ == "__main__":
    _common.main(WandbPeer, name="wandb")
