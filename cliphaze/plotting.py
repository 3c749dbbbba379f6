"""Figures a projector can show: one style for every lesson, photos as JPEG, a colorbar on every map.

Lessons call :func:`use_projector_style` once in their set-up cell. It sets 100 dpi and fonts of
10 pt or more, and makes Jupyter embed figures as JPEG (a photo grid is 5-10x smaller as JPEG
than as PNG, which keeps the committed notebooks small). :func:`show_map` draws a map with its
colorbar and picks the colour scale the data need: a sequential map over ``[vmin, vmax]`` for
densities and images, or a diverging map centred at zero for signed quantities (errors,
differences, weights minus one half).
"""

from __future__ import annotations

__all__ = ["PROJECTOR_STYLE", "use_projector_style", "show_map"]

#: matplotlib rcParams of every lesson figure.
PROJECTOR_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 13,
}


def use_projector_style(jpeg: bool = True) -> None:
    """Apply :data:`PROJECTOR_STYLE`; with ``jpeg`` (and inside IPython) embed figures as JPEG.

    Args:
        jpeg: embed inline figures as JPEG (quality 90) instead of PNG.
    """
    import matplotlib as mpl

    mpl.rcParams.update(PROJECTOR_STYLE)
    if not jpeg:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing is embedded
        return
    ip = get_ipython()
    if ip is None:
        return
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    set_matplotlib_formats("jpeg", pil_kwargs={"quality": 90})


def show_map(ax, values, *, title: str | None = None, signed: bool = False, vmin: float | None = None,
             vmax: float | None = None, cmap: str | None = None, label: str | None = None):
    """Draw a 2-D map on ``ax`` with a colorbar.

    Args:
        ax: a matplotlib Axes.
        values: ``(h, w)`` array or tensor.
        title: the axes title.
        signed: centre a diverging colour map at zero (``|max|`` of the data on both sides unless
            ``vmin``/``vmax`` are given); otherwise a sequential map over ``[vmin, vmax]``
            (the data's range when not given).
        vmin, vmax: colour limits.
        cmap: colour map name (default ``"RdBu_r"`` when signed, ``"magma"`` otherwise).
        label: the colorbar's label.

    Returns:
        the image artist.
    """
    import numpy as np

    arr = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ValueError(f"show_map draws a 2-D map, got shape {arr.shape}")
    if signed:
        bound = float(np.nanmax(np.abs(arr))) if arr.size else 1.0
        bound = bound or 1.0
        vmin = -bound if vmin is None else vmin
        vmax = bound if vmax is None else vmax
        cmap = cmap or "RdBu_r"
    else:
        cmap = cmap or "magma"
    im = ax.imshow(arr, cmap=cmap, vmin=vmin, vmax=vmax)
    if title:
        ax.set_title(title)
    ax.axis("off")
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if label:
        bar.set_label(label)
    return im
