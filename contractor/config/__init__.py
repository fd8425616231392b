"""Configuration values: merging layers, rendering them, and explaining where values come from.

Pure functions over plain data (no database access): the services build the layer list of a
target (Site, BluePrint, Foundation, Structure) and call these.

* ``merge(layers, class_list)`` applies ``("values", map)`` and ``("attributes", map)``
  layers in order (operators ``-`` ``<`` ``>`` ``~`` and ``:Class`` filters in values layers);
* ``render(values)`` renders every string through Jinja2 until nothing changes;
* ``explain(layers, class_list)`` is ``merge`` with per-key provenance;
* ``render_template(template, values)`` renders a PXE boot script or template;
* ``validate_config_values(map)`` checks the keys of a map before it is stored.

Every failure is a ``contractor.errors.ConfigError`` naming the key.
"""

from contractor.config.engine import LAYER_KINDS, Layer, Op, merge
from contractor.config.keys import CONFIG_KEY_PATTERN, ParsedKey, parse_key, validate_config_values
from contractor.config.provenance import Change, Explanation, KeyProvenance, explain
from contractor.config.render import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_ROUNDS,
    RenderCycleError,
    render,
    render_template,
)
from contractor.errors import ConfigError

__all__ = [
    "CONFIG_KEY_PATTERN",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_ROUNDS",
    "LAYER_KINDS",
    "Change",
    "ConfigError",
    "Explanation",
    "KeyProvenance",
    "Layer",
    "Op",
    "ParsedKey",
    "RenderCycleError",
    "explain",
    "merge",
    "parse_key",
    "render",
    "render_template",
    "validate_config_values",
]
