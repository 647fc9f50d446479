"""Model introspection without compiling: params, MACs and per-layer tables read off one abstract trace.

Modules, each importing only the ones listed before it (never `cnnjax.cli`, which imports this package):

* `trace`  -- a registered model and its input -> `ForwardTrace` (jaxpr of init + eval forward, params)
* `macs`   -- multiply-accumulates of convolutions and matrix products, walked off a jaxpr
* `layers` -- the forward's equations split into per-layer rows (shape, activation memory, params, MACs)
* `table`  -- the one table formatter, and the layer and zoo tables built with it
* `zoo`    -- the zoo table of `cnnjax models` and `scripts/model_table.py`
"""

from cnnjax.introspect.layers import Row, Summary, build_rows, summarize, summarize_module
from cnnjax.introspect.macs import (count_macs, eqn_macs, eqn_total_macs, eqns_macs, forward_macs, jaxpr_macs,
                                    model_macs, xla_flops)
from cnnjax.introspect.table import format_summary, format_table, format_zoo
from cnnjax.introspect.trace import (ForwardTrace, InputSizeError, NumClassesError, count_params, input_array,
                                     model_input_shape, registered_model, trace_forward)
from cnnjax.introspect.zoo import model_table, zoo_rows

__all__ = [
    "ForwardTrace", "InputSizeError", "NumClassesError", "Row", "Summary", "build_rows", "count_macs",
    "count_params", "eqn_macs", "eqn_total_macs", "eqns_macs", "format_summary", "format_table", "format_zoo",
    "forward_macs", "input_array", "jaxpr_macs", "model_input_shape", "model_macs", "model_table",
    "registered_model", "summarize", "summarize_module", "trace_forward", "xla_flops", "zoo_rows",
]
