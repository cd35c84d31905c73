"""Plugin manager: discovers providers through entry points, one plugin at a time.

* Group ``hybridrag_backends``: each entry point names a module (or object) with
  ``@hookimpl`` functions. First-party providers use the same mechanism as any
  third party's; the core imports none of them by name.
* A plugin that fails to load gives one warning naming it and its error; the
  others still work. ``HYBRIDRAG_BACKENDS_STRICT=1`` makes that an error.
* ``HYBRIDRAG_BACKENDS_DISABLE=name,...`` skips plugins by entry-point name.
* ``check_pending()`` runs after loading, so a hook implementation with a
  misspelled name is reported instead of silently ignored.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pluggy

from . import hookspecs
from .errors import NotFoundError, PluginError
from .provider import BackendProvider

ENTRY_POINT_GROUP = "hybridrag_backends"
ENV_DISABLE = "HYBRIDRAG_BACKENDS_DISABLE"
ENV_STRICT = "HYBRIDRAG_BACKENDS_STRICT"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded; the others still work."""


@dataclass
class PluginInfo:
    name: str  # entry-point name
    distribution: Optional[str]
    version: Optional[str]
    backends: List[str] = field(default_factory=list)
    error: Optional[str] = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "backends": list(self.backends),
            "error": self.error,
        }


def _strict() -> bool:
    return os.environ.get(ENV_STRICT, "").strip().lower() in ("1", "true", "yes", "on")


def _disabled() -> set:
    return {n.strip() for n in os.environ.get(ENV_DISABLE, "").split(",") if n.strip()}


class BackendManager:
    """A typed facade over pluggy: providers by name, plugin info, errors."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: Dict[str, PluginInfo] = {}
        self._providers: Dict[str, BackendProvider] = {}
        self._provider_plugin: Dict[str, str] = {}

    # -- loading ---------------------------------------------------------------

    def load_entry_points(self) -> None:
        disabled = _disabled()
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in disabled or ep.name in self.plugins:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
            self.plugins[ep.name] = info
            try:
                obj = ep.load()
                self.register_plugin(obj, name=ep.name)
                # per plugin, so a misspelled hook is blamed on (and skips) only the plugin that has it
                self.pm.check_pending()
            except Exception as exc:  # one broken plugin must not break the rest
                self._fail(info, exc)

    def register_plugin(self, obj: object, name: str) -> None:
        """Register a plugin object (module or instance) and collect its providers."""
        if name not in self.plugins:
            self.plugins[name] = PluginInfo(name=name, distribution=None, version=None)
        info = self.plugins[name]
        self.pm.register(obj, name=name)
        collected: List[type] = []
        impls = [i for i in self.pm.hook.register_backends.get_hookimpls() if i.plugin_name == name]
        for impl in impls:
            impl.function(register=collected.append)
        for cls in collected:
            self._add_provider(cls, info)

    def _add_provider(self, cls: type, info: PluginInfo) -> None:
        if not (isinstance(cls, type) and issubclass(cls, BackendProvider)):
            raise TypeError(f"register() takes a BackendProvider subclass, got {cls!r}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} has no backend name")
        if name in self._providers:
            raise ValueError(
                f"backend {name!r} is already provided by plugin {self._provider_plugin[name]!r}"
            )
        self._providers[name] = cls()
        self._provider_plugin[name] = info.name
        info.backends.append(name)

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.error = f"{type(exc).__name__}: {exc}"
        try:
            self.pm.unregister(name=info.name)
        except Exception:  # not registered yet
            pass
        for backend in info.backends:
            self._providers.pop(backend, None)
        info.backends.clear()
        msg = (
            f"hybridrag-backends plugin {info.name!r}"
            + (f" ({info.distribution} {info.version})" if info.distribution else "")
            + f" failed to load: {info.error}. Other backends still work; "
            f"reinstall or uninstall it, or set {ENV_DISABLE}={info.name} to skip it."
        )
        if _strict():
            raise PluginError(msg) from exc
        warnings.warn(msg, PluginLoadWarning, stacklevel=3)

    # -- queries ---------------------------------------------------------------

    @property
    def providers(self) -> Dict[str, BackendProvider]:
        return dict(self._providers)

    def get(self, name: str) -> BackendProvider:
        key = str(getattr(name, "value", name)).lower()
        try:
            return self._providers[key]
        except KeyError:
            installed = ", ".join(sorted(self._providers)) or "none"
            extra = {"postgres": "run: pip install 'hybridrag-backends[postgres]'",
                     "mongodb": "run: pip install 'hybridrag-backends[mongodb]'"}
            raise NotFoundError(
                f"no backend {key!r} is installed (installed: {installed}); "
                + extra.get(key, f"install the plugin that provides {key!r}")
            ) from None

    def plugin_of(self, backend: str) -> PluginInfo:
        return self.plugins[self._provider_plugin[backend]]

    def provider_for_url(self, url: str) -> Optional[BackendProvider]:
        scheme = url.split("://", 1)[0].lower() if "://" in url else None
        if scheme is None:
            return None
        for provider in self._providers.values():
            if scheme in provider.url_schemes:
                return provider
        return None


_manager: Optional[BackendManager] = None


def get_manager(reload: bool = False) -> BackendManager:
    """The process-wide manager, loaded from entry points on first use."""
    global _manager
    if _manager is None or reload:
        manager = BackendManager()
        manager.load_entry_points()
        _manager = manager
    return _manager


def get_provider(backend: "str | object") -> BackendProvider:
    return get_manager().get(backend)  # type: ignore[arg-type]
