"""Named registries of the library's pluggable components.

A component (an encoder, a posterior, a prior, a likelihood, a dataset, a model ...) registers
itself under a name; a config refers to it by that name plus keyword options:

```yaml
posterior: {name: sylvester_orthogonal, num_flows: 16, bottleneck: 32}
```

`Registry.build` checks the options against the constructor's signature, so a misspelled option
fails before training with the list of accepted ones.
"""

import difflib
import inspect
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

from tfdgm.errors import ConfigError


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry:
    """A name -> factory mapping whose misses raise a `ConfigError` listing the known names.

    Args:
        kind: what the registry holds, used in messages (e.g. `"posterior"`).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a class or function under `name`."""

        def decorator(factory):
            if name in self._entries and self._entries[name] is not factory:
                raise ValueError(f"{self.kind} '{name}' is registered twice.")
            self._entries[name] = factory
            factory.registered_name = name
            return factory

        return decorator

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str, where: str = "") -> Callable[..., Any]:
        """Returns the factory registered as `name`, or raises a `ConfigError` listing the names."""
        if name not in self._entries:
            at = f"{where}: " if where else ""
            raise ConfigError(
                    f"{at}unknown {self.kind} '{name}'.{_suggest(name, self._entries)} "
                    f"Registered {self.kind}s: {', '.join(self.names())}.")
        return self._entries[name]

    def accepted_options(self, name: str, injected: Iterable[str] = ()) -> Dict[str, inspect.Parameter]:
        """The keyword options a config may give for `name` (constructor parameters minus injected)."""
        factory = self.get(name)
        target = factory.__init__ if inspect.isclass(factory) else factory
        params = dict(inspect.signature(target).parameters)
        params.pop("self", None)
        for key in injected:
            params.pop(key, None)
        return {k: p for k, p in params.items()
                        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def check_options(self, name: str, options: Mapping[str, Any], where: str,
                                        injected: Iterable[str] = ()) -> None:
        """Raises a `ConfigError` if `options` holds a key the component does not accept."""
        accepted = self.accepted_options(name, injected)
        for key in options:
            if key not in accepted:
                raise ConfigError(
                        f"{where}.{key}: {self.kind} '{name}' has no option '{key}'."
                        f"{_suggest(key, accepted)} Accepted options: {', '.join(sorted(accepted)) or 'none'}.")

    def build(self, spec: Mapping[str, Any], where: str, **injected) -> Any:
        """Builds the component described by `spec = {'name': ..., **options}`.

        Options that do not bind to the constructor's signature (a missing required option) are
        a `ConfigError`; errors raised inside the constructor are not caught: a component
        checks its option values itself (raising `ConfigError`, e.g. in `validate_options`),
        and anything else is a programming error that must surface with its traceback.

        Args:
            spec: a mapping with a `name` key and the component's options.
            where: the config path of `spec`, used in error messages (e.g. `"model.posterior"`).
            **injected: arguments the library supplies (e.g. `latent_dim`); a config may not set them.
        """
        if "name" not in spec:
            raise ConfigError(f"{where}: missing 'name'. Choose one of: {', '.join(self.names())}.")
        name = spec["name"]
        options = {k: v for k, v in spec.items() if k != "name"}
        self.get(name, where)
        overlap = set(options) & set(injected)
        if overlap:
            raise ConfigError(f"{where}: {', '.join(sorted(overlap))} set by the library "
                              f"(e.g. from model.latent_dim or the dataset); remove it here.")
        self.check_options(name, options, where, injected)
        factory = self._entries[name]
        accepted = self.accepted_options(name)
        injected = {k: v for k, v in injected.items() if k in accepted}
        target = factory.__init__ if inspect.isclass(factory) else factory
        try:  # only the binding of the config's options is the user's mistake
            inspect.signature(target).bind(*(() if not inspect.isclass(factory) else (None,)),
                                           **options, **injected)
        except TypeError as error:
            raise ConfigError(f"{where}: invalid options for {self.kind} '{name}': {error}") from None
        return factory(**options, **injected)


ENCODERS = Registry("encoder")
DECODERS = Registry("decoder")
POSTERIORS = Registry("posterior")
PRIORS = Registry("prior")
LIKELIHOODS = Registry("likelihood")
DATASETS = Registry("dataset")
MODELS = Registry("model")
