"""Speed of the AMSGrad-paper sweeps (adaptx.experiments) against straightforward baselines.

Rows (seed-steps per second = settings x seeds x steps / seconds, compilation excluded):

* stochastic problem, Adam (β = 0.9, 0.99, γ = 1e-2), ``--seeds`` seeds:
  - ``baseline``: optax's adam in ``lax.scan`` + ``vmap`` over seeds, one ``jax.random`` draw per step
    (``split`` the key, ``bernoulli(sub, 0.01)``), the way one writes it first;
  - ``adaptx.experiments``: :func:`adaptx.experiments.sweep` with ``adaptx.adam`` (geometric-gap
    sampling, chunked, logging 50 points);
  - ``baseline, fold_in(key, t) + bernoulli``: the baseline with the draw keyed by (seed, step)
    instead of a carried, split key;
  - ``baseline, words drawn ahead``: the baseline with one threefry word per step, drawn before the
    loop in one vectorised call (the cheapest straightforward form; its memory grows with the steps);
* online problem, Adam, ``--settings`` learning rates (one seed each):
  - ``baseline``: optax's adam in ``lax.scan`` + ``vmap`` over the learning rates;
  - ``adaptx.experiments``: :func:`sweep` with a learning-rate grid;
  - ``baseline without regret``: the baseline returning only x (less work than a sweep, for scale);
* ``torch loop``: the common reference, ``torch.optim.Adam`` stepped in a Python loop, one seed;
* with ``--devices N`` (default 2), the two adaptx rows again with the runs split over N devices
  (:func:`adaptx.experiments.run_devices`: on a CPU, XLA presents the CPU as N devices, set before jax
  starts; every other row runs on the first device, as without the flag).

The adaptx rows run ``--steps`` (1M) steps, the baselines fewer (their rate does not depend on the
number of steps; the stochastic one is slow): a sweep's fixed cost per logged point (one compiled call
each, many of them short near t = 1) is then spread as it is over the 10M steps of the use case. Last,
one whole 10M-step sweep over the seeds is timed once, as ``adaptx reddi`` would run it.

Cases are timed interleaved (``--repeats`` rounds), medians reported with min-max, ratios against the
baseline of the same setting measured in the same process. Prints a table and writes JSON.

    python benchmarks/reddi.py                       # full run, ~3-4 minutes
    python benchmarks/reddi.py --quick               # smoke test, seconds
    python benchmarks/reddi.py --json benchmarks/results/reddi.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

try:  # run as `python benchmarks/reddi.py` (script folder on sys.path) or `python -m benchmarks.reddi`
    from benchmarks import common
except ImportError:  # pragma: no cover
    import common  # type: ignore[no-redef]

import adaptx
from adaptx.experiments import Online, Stochastic, run_devices, sweep

B1, B2, LR, P = 0.9, 0.99, 1e-2, 0.01


def baseline_stochastic(seeds: int, steps: int, draw: str = "split"):
    """optax adam, lax.scan over steps, vmap over seeds, one Bernoulli(p) draw per step.

    ``draw`` says how the step's draw is made:

    * ``"split"``: split the carried key, ``bernoulli(sub, p)``: the way one writes it first;
    * ``"fold_in"``: ``bernoulli(fold_in(key, t), p)``, counter-based (no key carried);
    * ``"ahead"``: one 32-bit threefry word per step, all of a seed's words drawn before the loop in
      one vectorised ``jax.random.bits`` call and compared with p * 2^32 in the loop: the cheapest
      straightforward form, bounded by the generator's words/s, but its memory grows with the steps
      (10M steps x 1024 seeds would need 41 GB of words)."""
    if draw not in ("split", "fold_in", "ahead"):
        raise ValueError(f"draw must be 'split', 'fold_in' or 'ahead', got {draw!r}")
    opt = optax.adam(LR, b1=B1, b2=B2)
    threshold = np.uint32(round(P * 2**32))

    def one_seed(key):
        x = jnp.zeros(())
        state = opt.init(x)

        def body(carry, word):
            x, state, regret, key = carry
            if draw == "ahead":
                big = word < threshold
            elif draw == "fold_in":
                big = jax.random.bernoulli(jax.random.fold_in(key, word), P)
            else:
                key, sub = jax.random.split(key)
                big = jax.random.bernoulli(sub, P)
            g = jnp.where(big, 1010.0, -10.0)
            regret = regret + g * (x + 1)
            updates, state = opt.update(g, state, x)
            return (jnp.clip(x + updates, -1, 1), state, regret, key), None

        if draw == "ahead":
            words = jax.random.bits(key, (steps,), jnp.uint32)
        elif draw == "fold_in":
            words = jnp.arange(steps, dtype=jnp.uint32)  # the step number, folded into the key
        else:
            words = None
        init = (x, state, jnp.zeros(()), key)
        (x, _, regret, _), _ = jax.lax.scan(body, init, words, length=steps)
        return x, regret

    keys = jax.random.split(jax.random.key(0), seeds)
    fn = jax.jit(jax.vmap(one_seed))
    return lambda: jax.block_until_ready(fn(keys))


def baseline_online(settings: int, steps: int, regret: bool = True):
    """optax adam, lax.scan over steps, vmap over learning rates; the gradient is a function of t.

    ``regret=False`` drops the regret and returns only x: less work than a sweep does (it records
    R_t/t), shown for scale because it is XLA:CPU's fastest form of this loop (8 kernels per step)."""
    lrs = jnp.asarray(np.geomspace(1e-4, 1e-1, settings), jnp.float32)

    def one_setting(lr):
        opt = optax.adam(lr, b1=B1, b2=B2)
        x = jnp.zeros(())
        state = opt.init(x)

        def body(carry, t):
            x, state, r = carry
            g = jnp.where(t % 101 == 1, 1010.0, -10.0)
            r = r + g * (x + 1) if regret else r
            updates, state = opt.update(g, state, x)
            return (jnp.clip(x + updates, -1, 1), state, r), None

        (x, _, r), _ = jax.lax.scan(body, (x, state, jnp.zeros(())), jnp.arange(1, steps + 1))
        return (x, r) if regret else x

    fn = jax.jit(jax.vmap(one_setting))
    return lambda: jax.block_until_ready(fn(lrs))


def ours_stochastic(seeds: int, steps: int, devices=None):
    opt = adaptx.adam(LR, b1=B1, b2=B2)
    return lambda: sweep(opt, Stochastic(P), steps=steps, seeds=seeds, log_points=50, devices=devices)


def ours_online(settings: int, steps: int, devices=None):
    make = lambda learning_rate: adaptx.adam(learning_rate, b1=B1, b2=B2)  # noqa: E731
    grid = {"learning_rate": np.geomspace(1e-4, 1e-1, settings)}
    return lambda: sweep(make, Online(), steps=steps, grid=grid, log_points=50, devices=devices)


def torch_loop(steps: int):
    """The reference: torch.optim.Adam on one scalar, a Python loop, projection after each step."""
    import torch

    torch.set_num_threads(1)

    def go():
        gen = torch.Generator().manual_seed(0)
        x = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([x], lr=LR, betas=(B1, B2))
        regret = 0.0
        for _ in range(steps):
            big = torch.rand(1, generator=gen).item() < P
            loss = (1010.0 if big else -10.0) * x.sum()
            regret += float(loss.detach()) + (1010.0 if big else -10.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(-1.0, 1.0)
        return regret

    return go


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1024, help="seeds of the stochastic rows")
    parser.add_argument("--settings", type=int, default=1024, help="learning rates of the online rows")
    parser.add_argument("--steps", type=int, default=1_000_000, help="steps of the adaptx rows")
    parser.add_argument("--baseline-steps", type=int, default=20_000, help="steps of the stochastic baseline")
    parser.add_argument("--online-baseline-steps", type=int, default=200_000)
    parser.add_argument("--torch-steps", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--full-steps", type=int, default=10_000_000,
        help="then time one whole stochastic Adam sweep of this many steps over --seeds seeds, as "
        "`adaptx reddi` runs it (200 logged points); 0 skips it",
    )
    parser.add_argument("--devices", type=int, default=2,
                        help="also time the adaptx rows split over this many devices (1: not)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    parser.add_argument("--json", default="benchmarks/results/reddi.json", help="where to write results")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.settings, args.steps = 64, 64, 20_000
        args.baseline_steps, args.online_baseline_steps = 2_000, 20_000
        args.torch_steps, args.repeats, args.full_steps = 500, 2, 0

    # before any computation: on a CPU, jax can split the CPU into devices only before it starts
    devices = run_devices(args.devices) if args.devices > 1 else None
    S, H = args.seeds, args.settings
    cases = {
        "stochastic/baseline": (baseline_stochastic(S, args.baseline_steps), S * args.baseline_steps),
        "stochastic/adaptx": (ours_stochastic(S, args.steps), S * args.steps),
        "stochastic/baseline, fold_in(key, t) + bernoulli": (
            baseline_stochastic(S, args.baseline_steps, draw="fold_in"), S * args.baseline_steps,
        ),
        "stochastic/baseline, words drawn ahead": (
            baseline_stochastic(S, args.baseline_steps, draw="ahead"), S * args.baseline_steps,
        ),
        "online/baseline": (baseline_online(H, args.online_baseline_steps), H * args.online_baseline_steps),
        "online/adaptx": (ours_online(H, args.steps), H * args.steps),
        "online/baseline without regret (x only)": (
            baseline_online(H, args.online_baseline_steps, regret=False), H * args.online_baseline_steps,
        ),
        "stochastic/torch loop (1 seed)": (torch_loop(args.torch_steps), args.torch_steps),
    }
    if devices:
        n = len(devices)
        cases[f"stochastic/adaptx, {n} devices"] = (ours_stochastic(S, args.steps, devices), S * args.steps)
        cases[f"online/adaptx, {n} devices"] = (ours_online(H, args.steps, devices), H * args.steps)
    print(f"timing {len(cases)} cases, {args.repeats} interleaved repeats ...", file=sys.stderr)
    times = common.interleaved({k: fn for k, (fn, _) in cases.items()}, repeats=args.repeats)
    rows = []
    for name, (_, work) in cases.items():
        row = {"case": name, "work_seed_steps": work, **common.stats(times[name], work)}
        rows.append(row)
    base = {r["case"].split("/")[0]: r["rate_median"] for r in rows if r["case"].endswith("/baseline")}
    for r in rows:
        r["vs_baseline"] = r["rate_median"] / base[r["case"].split("/")[0]]
        r["seconds_per_10M_steps_x_1024"] = 1024 * 10_000_000 / r["rate_median"]
        r["range"] = f"{r['rate_min'] / 1e6:,.3g}-{r['rate_max'] / 1e6:,.3g}"
        r["rate_M"] = r["rate_median"] / 1e6
    print()
    print(
        common.table(
            rows,
            [
                ("case", "case", "s"),
                ("rate_M", "M seed-steps/s (median)", ",.3g"),
                ("range", "min-max", "s"),
                ("vs_baseline", "x baseline", ".2f"),
                ("seconds_per_10M_steps_x_1024", "s for 10M steps x 1024", ",.1f"),
            ],
        )
    )
    full = None
    if args.full_steps:
        print(f"one stochastic sweep of {args.full_steps:,} steps x {S} seeds ...", file=sys.stderr)
        t = time.perf_counter()
        res = sweep(adaptx.adam(LR, b1=B1, b2=B2), Stochastic(P), steps=args.full_steps, seeds=S)
        full = {"steps": args.full_steps, "seeds": S, "seconds": time.perf_counter() - t,
                "x_T_mean": float(res.final_x().mean())}
        print(f"\nstochastic Adam, {args.full_steps:,} steps x {S} seeds, one sweep (200 logged points, "
              f"compiled piece reused from above): {full['seconds']:.1f} s")
        if devices:
            t = time.perf_counter()
            split = sweep(adaptx.adam(LR, b1=B1, b2=B2), Stochastic(P), steps=args.full_steps, seeds=S,
                          devices=devices)
            full["seconds_on_devices"] = time.perf_counter() - t
            full["devices"] = len(devices)
            full["same_numbers_on_devices"] = bool(
                np.array_equal(split.x, res.x) and np.array_equal(split.avg_regret, res.avg_regret)
            )
            print(f"the same sweep on {len(devices)} devices: {full['seconds_on_devices']:.1f} s "
                  f"(same numbers: {full['same_numbers_on_devices']})")
    payload = {
        "benchmark": "reddi",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": vars(args),
        "machine": common.machine(),
        "rows": rows,
        "full_run": full,
        "times_s": times,
    }
    common.write_json(args.json, payload)
    print(f"\nwrote {os.path.abspath(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
