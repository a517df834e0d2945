"""Engines that run adaptx's elementwise arithmetic on a different layout of the parameters.

:func:`grouped` runs an optimizer on stacked (shape, dtype, mask) groups of parameters while taking and
returning ordinary pytrees; :func:`group` stacks the parameters themselves, to carry them grouped across
steps; :func:`ungroup` turns groups (parameters or an optimizer state) back into the per-parameter layout.
"""

from adaptx.engine.grouped import GroupedState, Groups, GroupSpec, group, group_mask, grouped, ungroup

__all__ = ["GroupSpec", "GroupedState", "Groups", "group", "group_mask", "grouped", "ungroup"]
