"""Engines that run adaptx's elementwise arithmetic on a different layout of the parameters.

:func:`grouped` runs an optimizer on stacked (shape, dtype, mask) groups of parameters while taking and
returning ordinary pytrees; :func:`ungroup` turns its state back into the per-parameter layout.
"""

from adaptx.engine.grouped import GroupedState, Groups, GroupSpec, group_mask, grouped, ungroup

__all__ = ["GroupSpec", "GroupedState", "Groups", "group_mask", "grouped", "ungroup"]
