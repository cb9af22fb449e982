"""The model a service worker serves: loaded in the background, retried while unusable, and
(opt-in) following its alias.

`ModelSlot.scorer` is None until a usable model is loaded, then the `Scorer` of that
model. A request reads it once and uses what it read, so a swap can never give one
request parts of two models. With `follow_seconds` set, a background thread looks the
alias up every `follow_seconds`; when it points at another version, that version is
loaded, its Scorer built and warmed up next to the one in service, and only then put in
the slot by one assignment: readers see the old model or the new one, never a half-loaded
one. A version that cannot be loaded is reported once and the served model stays.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from data_contracts.examples import EXAMPLE_RECORD
from model_runtime.loading import LoadedModel
from serving.gate import normalise_record
from serving.scoring import Job, Scorer

log = logging.getLogger("eih.serving")


class ModelSlot:
    """The served model of one worker (see the module docstring)."""

    def __init__(self, uri: str, *, xgb_threads: int = 1, top_k: int = 5, retry_seconds: float = 30.0,
                 follow_seconds: float | None = None, loader: Callable[[str], LoadedModel] | None = None) -> None:
        self.uri = uri
        self.loader = loader  # how `uri` is loaded (default: the MLflow registry, model_runtime.loading.load_model)
        self.xgb_threads = xgb_threads
        self.top_k = top_k
        self.retry_seconds = retry_seconds
        self.follow_seconds = follow_seconds
        self.scorer: Scorer | None = None
        self.reason = "the model is still loading"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelSlot:
        """Load (and then follow) in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._run, name="eih-model-loader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop retrying and following (the served model stays in the slot)."""
        self._stop.set()

    def _run(self) -> None:
        if self._load_until_ready() and self.follow_seconds:
            self._follow()

    def _prepare(self, load_uri: str) -> Scorer:
        """Load `load_uri`, build its Scorer and score the example record once (warm-up)."""
        from model_runtime.loading import load_model

        loaded = (self.loader or load_model)(load_uri)
        if load_uri != self.uri:  # a pinned version of the followed alias: report the alias as the URI
            loaded = dataclasses.replace(loaded, uri=self.uri)
        loaded.predictor.set_threads(self.xgb_threads)
        scorer = Scorer(loaded, top_k=self.top_k)
        scorer.run([Job("predict", [normalise_record(EXAMPLE_RECORD)])])
        return scorer

    def _load_until_ready(self) -> bool:
        from model_runtime.loading import ModelNotAvailable

        last = None
        while not self._stop.is_set():
            try:
                scorer = self._prepare(self.uri)
            except ModelNotAvailable as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001 - a broken artifact must not kill the worker
                reason = f"no usable model at {self.uri}: {type(exc).__name__} while preparing it"
            else:
                self.scorer = scorer
                info, p = scorer.model_info, scorer.predictor
                log.info("ready: serving %s (registered model %s version %s, contract %s, threshold %g %%)",
                         self.uri, info["name"], info["version"], p.contract_version, p.threshold_pct)
                return True
            self.reason = reason
            if reason != last:
                log.error("not ready: %s; retrying every %g s", reason, self.retry_seconds)
                last = reason
            self._stop.wait(self.retry_seconds)
        return False

    def _follow(self) -> None:
        alias = self.uri.rsplit("@", 1)[-1]
        reported: set[str] = set()
        while not self._stop.wait(self.follow_seconds):
            self.check_alias(alias, reported)

    def check_alias(self, alias: str, reported: set[str]) -> None:
        """One look at the alias: when it points at another version, load that one and swap it in.
        Problems are logged once each (in `reported`) and leave the served model in place."""
        from model_runtime.loading import resolve

        current = self.scorer.model_info["version"]
        try:
            pinned = resolve(self.uri)
        except Exception as exc:  # noqa: BLE001 - a registry hiccup must not stop the service
            _once(reported, f"lookup:{type(exc).__name__}", "could not look up %s: %s; serving version %s",
                  self.uri, type(exc).__name__, current)
            return
        if pinned.version == current:
            return
        try:
            scorer = self._prepare(pinned.load_uri)
        except Exception as exc:  # noqa: BLE001 - keep serving the loaded model
            _once(reported, f"load:{pinned.version}", "%s moved to version %s, which cannot be served (%s); "
                  "serving version %s", alias, pinned.version, type(exc).__name__, current)
            return
        self.scorer = scorer  # one assignment: the swap is atomic for readers
        log.info("%s moved: version %s -> %s", alias, current, pinned.version)


def _once(reported: set[str], key: str, message: str, *args) -> None:
    if key not in reported:
        reported.add(key)
        log.error(message, *args)
