"""Node parameters declared from config/vla_nav.yaml: typed, checked at start and on `param set`.

Parameters are dynamically typed (so `-p max_linear_vel:=1` is accepted as 1.0) but every value,
at start and on `ros2 param set`, must convert to the YAML default's type, else it is refused
with a reason (at start: the node exits with one fatal line naming the parameter).
"""
from __future__ import annotations

from typing import Any

from vla_nav.config import node_defaults
from vla_nav.ros.runner import NodeStartupError


def coerce(default: Any, value: Any) -> Any:
    """`value` converted to the type of the YAML default; TypeError if it cannot be."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
            return list(value)
    else:
        return value
    raise TypeError(f'expected {type(default).__name__}, got {value!r}')


class NodeParameters:
    """Live, typed read access to a node's parameters: `params.max_linear_vel` is always the
    current value (run-time `ros2 param set` included), converted to the YAML default's type."""

    def __init__(self, node, defaults: dict[str, Any]) -> None:
        self._node = node
        self._defaults = defaults

    def __getattr__(self, name: str) -> Any:
        defaults = self.__dict__.get('_defaults', {})
        if name not in defaults:
            raise AttributeError(f'no parameter {name!r} in the config of this node')
        return coerce(defaults[name], self._node.get_parameter(name).value)

    def names(self) -> list[str]:
        return list(self._defaults)

    def as_dict(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """All current values; `overrides` (name -> raw value) are applied on top, coerced."""
        values = {name: getattr(self, name) for name in self._defaults}
        for name, value in (overrides or {}).items():
            if name in self._defaults:
                values[name] = coerce(self._defaults[name], value)
        return values


def declare_parameters_from_config(node, node_name: str) -> NodeParameters:
    """Declare every key of config/vla_nav.yaml `node_name` with its default; return a typed view."""
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult

    defaults = node_defaults(node_name)
    for name, default in defaults.items():
        node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
    params = NodeParameters(node, defaults)
    for name in defaults:
        try:
            getattr(params, name)
        except TypeError as error:
            raise NodeStartupError(f'parameter {name}: {error}') from error

    def check_types(parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name in defaults:
                try:
                    coerce(defaults[parameter.name], parameter.value)
                except TypeError as error:
                    return SetParametersResult(successful=False,
                                               reason=f'{parameter.name}: {error}')
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check_types)
    return params


def declare_node_config(node, node_name: str, config_type):
    """Declare `node_name`'s parameters (declare_parameters_from_config) and build the node's typed
    config from them (vla_nav.core.node_config: VlaNodeConfig, ChunkExecutorNodeConfig,
    SimNodeConfig; validated in __post_init__). Returns (live parameter view, config); an invalid
    value is a NodeStartupError naming the parameter (one fatal line, exit code 1)."""
    params = declare_parameters_from_config(node, node_name)
    try:
        return params, config_type.from_params(params.as_dict())
    except (TypeError, ValueError) as error:
        raise NodeStartupError(f'invalid {node_name} parameters: {error}') from error
