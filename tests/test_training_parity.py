"""Whole training runs against real PyTorch (``adaptx.parity.training``) on scikit-learn's digits.

The MLP (64-32-10, tanh) is trained for 300 steps on batches of 64 with three ``torch.optim`` recipes —
AdamW + CosineAnnealingLR (eta_min > 0), Adam(amsgrad=True), RMSprop(momentum=0.9) — and beside each, from
torch's initial weights on the same batches, the same model in Flax NNX with ``adaptx.torch_compat`` and
with optax's nearest alias. The conv net (two 3x3 convolutions, a dense layer after an NCHW/NHWC flatten)
runs the AdamW recipe. Bound: max|θ_jax − θ_torch| ≤ 1e-4 × the parameter's movement so far, per
parameter and step, in float32. The harness itself is checked on what it must catch: a learning rate that
is wrong from step 101 on (it must part at exactly 101), NaN on either side or both (a failure at the
right step, never a pass); and CosineAnnealingLR against optax's cosine schedule, eta_min included. The
layout helpers are checked against torch's own forward passes (Flax NNX, linen and Haiku) and for exact
round trips. PyTorch being optional, importing the module without it must work and running it must say
what to install.

Runs that serve several tests are cached per module; torch runs on one thread (tiny models are much
faster that way, above all on a shared machine).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from adaptx import torch_compat as tc
from adaptx.parity import layouts, training, training_cli

STEPS = 300
TOL = 1e-4
WRONG_FROM = 100  # the wrong learning rate applies from the step with count 100, i.e. step 101
NAN_AT = 7  # on the tiny model


@functools.cache
def mlp(optimizer: str) -> tuple[training.DigitsOptimizer, dict[str, training.TrainingParity]]:
    extra = {}
    if optimizer == "amsgrad":
        extra = {
            # lr 5% too large from step 101 on: must part at step 101 exactly
            "wrong lr": tc.adam(lr=optax.piecewise_constant_schedule(1e-3, {WRONG_FROM: 1.05}), amsgrad=True),
        }
    return training.digits_run(
        "mlp",
        optimizer,
        steps=STEPS,
        extra=extra,
        rounding_floor=optimizer == "adamw-cosine",
        torch_threads=1,
    )


@functools.cache
def cnn() -> tuple[training.DigitsOptimizer, dict[str, training.TrainingParity]]:
    return training.digits_run("cnn", "adamw-cosine", steps=STEPS, torch_threads=1, with_optax=False)


@pytest.mark.parametrize("optimizer", training.DIGITS_OPTIMIZERS)
def test_mlp_matches_torch(optimizer):
    _, res = mlp(optimizer)
    r = res["adaptx"]
    assert r.first_parting is None, r.summary()
    assert r.passed and r.max_rel <= TOL, r.summary()
    assert r.steps.tolist() == list(range(1, STEPS + 1)) and r.torch_loss.shape == (STEPS,)
    # the check means something: the model trained (loss down by 4x) and every parameter moved
    assert r.torch_loss[-10:].mean() < r.torch_loss[0] / 4
    assert np.all(r.movement[-1] > 1e-2)
    # and the loss curves coincide to float32 rounding of the loss
    assert np.max(r.loss_gap / r.torch_loss) < 1e-4


@pytest.mark.parametrize("optimizer", ["amsgrad", "rmsprop-momentum"])
def test_optax_alias_parts_early(optimizer):
    """optax's AMSGrad (maximum of the corrected v̂) and RMSprop (ε inside the root; momentum on the
    lr-scaled update) are other algorithms: the runs part within two steps, by 10% of the movement."""
    pair, res = mlp(optimizer)
    r = res[pair.optax_name]
    assert not r.passed
    assert r.first_parting is not None and r.first_parting.step <= 2, r.summary()
    assert r.first_parting.reason.startswith("deviation") and r.first_parting.rel > 1e-2
    assert r.max_rel > 0.1


def test_optax_adamw_is_reported_beside_adaptx():
    """optax.adamw is the same algorithm rounded differently (θ − γλθ in one update instead of torch's
    θ·fl(1 − γλ) then the Adam step): within 1e-4 here, but several times further from torch than adaptx,
    and past 2e-5, which adaptx never reaches."""
    _, res = mlp("adamw-cosine")
    ours, theirs = res["adaptx"], res["optax.adamw"]
    assert np.isfinite(theirs.max_rel) and theirs.max_rel < 1e-3, theirs.summary()
    assert theirs.max_rel > 3 * ours.max_rel
    assert ours.first_beyond(2e-5) is None
    assert theirs.first_beyond(2e-5) is not None


def test_rounding_floor_restores_the_run():
    """The floor run (torch on the same batches, rows permuted) starts from the restored model, optimizer
    and scheduler: it stays at rounding distance from the main torch run, and the model ends trained."""
    _, res = mlp("adamw-cosine")
    floor = res["torch, rows permuted"]
    assert floor.passed and floor.max_rel < TOL, floor.summary()
    assert np.max(np.abs(floor.other_loss - floor.torch_loss) / floor.torch_loss) < 1e-4


def test_cnn_matches_torch():
    _, res = cnn()
    r = res["adaptx"]
    assert r.passed and r.max_rel <= TOL, r.summary()
    assert set(r.names) == {
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc.weight",
        "fc.bias",
    }
    assert r.torch_loss[-10:].mean() < r.torch_loss[0] / 4


def test_a_wrong_learning_rate_parts_at_its_first_step():
    _, res = mlp("amsgrad")
    r = res["wrong lr"]
    assert r.first_parting is not None and r.first_parting.step == WRONG_FROM + 1, r.summary()
    assert np.max(r.worst[:WRONG_FROM]) <= TOL  # identical to the adaptx run before
    assert r.first_parting.rel > TOL and r.first_parting.reason.startswith("deviation")


def _tiny(torch_loss=None, batches=None, transform=None, **options):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mapping = layouts.mapping_by_name(model.state_dict(), "nnx", rename={"": "fc"})

    def loss_fn(p, batch):
        x, y = batch
        return training.cross_entropy(x @ p["fc"]["kernel"] + p["fc"]["bias"], y)

    rng = np.random.default_rng(0)
    if batches is None:
        batches = [(rng.standard_normal((8, 4), dtype=np.float32), rng.integers(0, 3, 8)) for _ in range(12)]
    return training.compare_training(
        model, opt, loss_fn, transform or tc.adam(lr=1e-2), mapping, batches, torch_loss=torch_loss, **options
    )


def test_tiny_model_passes_and_every_k_compares_every_kth_step():
    r = _tiny(every=5)
    assert r.passed and r.max_rel < TOL
    assert r.steps.tolist() == [5, 10, 12] and r.max_abs.shape == (3, 2) and r.torch_loss.shape == (12,)


def test_nan_on_the_jax_side_fails_at_its_step():
    nan_at_7 = optax.scale_by_schedule(lambda count: jnp.where(count == NAN_AT - 1, jnp.nan, 1.0))
    r = _tiny(transform=optax.chain(tc.adam(lr=1e-2), nan_at_7))
    assert not r.passed and np.isnan(r.max_rel)
    assert r.first_parting.step == NAN_AT, r.summary()
    assert "non-finite" in r.first_parting.reason and "JAX" in r.first_parting.reason
    assert f"parts at step {NAN_AT}" in r.summary()


def test_nan_on_the_torch_side_fails_at_its_step():
    calls = []

    def poisoned(out, y):
        calls.append(1)
        loss = torch.nn.functional.cross_entropy(out, y)
        return loss * float("nan") if len(calls) == 5 else loss

    r = _tiny(torch_loss=poisoned)
    assert not r.passed and np.isnan(r.max_rel)
    assert r.first_parting.step == 5 and "torch" in r.first_parting.reason, r


def test_nan_on_both_sides_is_still_a_failure():
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 4), dtype=np.float32), rng.integers(0, 3, 8)) for _ in range(6)]
    batches[2][0][0, 0] = np.nan
    r = _tiny(batches=batches)
    assert not r.passed and r.first_parting.step == 3 and np.isnan(r.max_rel)


def test_cosine_annealing_is_optax_cosine_decay_with_alpha():
    """CosineAnnealingLR (torch's recursive update) against optax.cosine_decay_schedule(alpha=eta_min/lr)
    at the number of steps taken: equal up to T_max (float32 rounding of the schedule); after T_max torch
    climbs back, optax stays at eta_min."""
    lr, eta_min, t_max = 3e-3, 1e-4, STEPS
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min)
    torch_lrs = []
    for _ in range(t_max + 100):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    schedule = optax.cosine_decay_schedule(lr, t_max, alpha=eta_min / lr)
    optax_lrs = np.asarray(jax.vmap(schedule)(jnp.arange(t_max + 100)), np.float64)
    torch_lrs = np.asarray(torch_lrs)
    np.testing.assert_allclose(optax_lrs[: t_max + 1], torch_lrs[: t_max + 1], rtol=2e-6)
    assert torch_lrs[t_max] == pytest.approx(eta_min)
    assert torch_lrs[-1] > 5 * eta_min and optax_lrs[-1] == pytest.approx(eta_min, rel=1e-6)


# ---------------------------------------------------------------------------------------------- layouts


def test_layout_round_trips_are_exact():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 7)).astype(np.float32)
    np.testing.assert_array_equal(layouts.linear_to_kernel(w), w.T)
    np.testing.assert_array_equal(layouts.kernel_to_linear(layouts.linear_to_kernel(w)), w)
    for shape in [(4, 3, 5), (4, 3, 2, 5), (4, 3, 2, 2, 3)]:
        c = rng.standard_normal(shape)
        k = layouts.conv_to_hwio(c)
        assert k.shape == (*shape[2:], shape[1], shape[0])
        np.testing.assert_array_equal(layouts.hwio_to_conv(k), c)
    c = rng.standard_normal((8, 3, 3, 2))
    assert layouts.conv_to_hwio(c)[2, 1, 0, 5] == c[5, 0, 2, 1]  # K[h, w, i, o] = W[o, i, h, w]
    fl = layouts.flattened_linear(3, 2, 4)
    w = rng.standard_normal((6, 24))
    np.testing.assert_array_equal(fl.to_torch(fl.to_jax(w)), w)
    # K[(h W + w) C + c, o] = W[o, (c H + h) W + w]
    assert fl.to_jax(w)[(1 * 4 + 2) * 3 + 1, 5] == w[5, (1 * 2 + 1) * 4 + 2]
    sd = {
        "conv.weight": rng.standard_normal((8, 1, 3, 3)),
        "conv.bias": rng.standard_normal(8),
        "layers.0.weight": rng.standard_normal((4, 6)),
        "layers.0.bias": rng.standard_normal(4),
        "norm.weight": rng.standard_normal(4),
    }
    for style in layouts.STYLES:
        m = layouts.mapping_by_name(sd, style, rename={"layers.0": "dense"} if style == "haiku" else None)
        back = m.to_torch(m.to_jax(sd))
        assert set(back) == set(sd)
        for k in sd:
            np.testing.assert_array_equal(back[k], sd[k])
    paths = {e.torch_name: e.path for e in layouts.mapping_by_name(sd, "nnx")}
    assert paths["layers.0.weight"] == ("layers", 0, "kernel") and paths["norm.weight"] == ("norm", "scale")
    paths = {e.torch_name: e.path for e in layouts.mapping_by_name(sd, "linen")}
    assert paths["layers.0.weight"] == ("layers_0", "kernel")
    paths = {
        e.torch_name: e.path
        for e in layouts.mapping_by_name(sd, "haiku", rename={"layers.0": "mlp/~/linear"})
    }
    assert paths["layers.0.weight"] == ("mlp/~/linear", "w") and paths["conv.bias"] == ("conv", "b")


class _TorchNet(torch.nn.Module):
    """conv → tanh → flatten (C, H, W) → dense; the reference forward pass for the layout tests."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 5, 3)
        self.fc = torch.nn.Linear(5 * 4 * 3, 4)

    def forward(self, x):  # x: NCHW (N, 2, 6, 5)
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _inputs():
    torch.manual_seed(1)
    net = _TorchNet()
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 5)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    return net, x, x.transpose(0, 2, 3, 1), ref  # NHWC for the JAX libraries


FLATTEN = {"fc.weight": layouts.flattened_linear(5, 4, 3)}
# The JAX models' own initial weights are replaced by torch's: zeros spare compiling a random init.
ZEROS = jax.nn.initializers.zeros


def test_nnx_forward_matches_torch():
    net, _, x_nhwc, ref = _inputs()

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(2, 5, (3, 3), padding="VALID", rngs=rngs, kernel_init=ZEROS)
            self.fc = nnx.Linear(60, 4, rngs=rngs, kernel_init=ZEROS)

        def __call__(self, x):
            h = jnp.tanh(self.conv(x))
            return self.fc(h.reshape(h.shape[0], -1))

    model = Net(nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    template = nnx.to_pure_dict(state)
    m = layouts.mapping_by_name(net.state_dict(), "nnx", template=template, layouts=FLATTEN)
    out = nnx.merge(graphdef, m.to_jax(net.state_dict()))(x_nhwc)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-5)
    # without the flatten permutation the shapes fit but the function is another one
    plain = layouts.mapping_by_name(net.state_dict(), "nnx", template=template)
    wrong = nnx.merge(graphdef, plain.to_jax(net.state_dict()))(x_nhwc)
    assert np.max(np.abs(np.asarray(wrong) - ref)) > 1e-2
    # and back: the NNX tree gives torch's state_dict
    back = m.to_torch(nnx.state(nnx.merge(graphdef, m.to_jax(net.state_dict())), nnx.Param))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(back[k], v.numpy())


def test_linen_forward_matches_torch():
    import flax.linen as nn

    net, _, x_nhwc, ref = _inputs()

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = jnp.tanh(nn.Conv(5, (3, 3), padding="VALID", name="conv", kernel_init=ZEROS)(x))
            return nn.Dense(4, name="fc", kernel_init=ZEROS)(h.reshape(h.shape[0], -1))

    params = Net().init(jax.random.key(0), x_nhwc)["params"]
    m = layouts.mapping_by_name(net.state_dict(), "linen", template=params, layouts=FLATTEN)
    out = Net().apply({"params": m.to_jax(net.state_dict())}, x_nhwc)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-5)


def test_haiku_forward_matches_torch():
    import haiku as hk

    net, _, x_nhwc, ref = _inputs()

    def forward(x):
        h = jnp.tanh(hk.Conv2D(5, 3, padding="VALID", w_init=jnp.zeros)(x))
        return hk.Linear(4, w_init=jnp.zeros)(h.reshape(h.shape[0], -1))

    f = hk.without_apply_rng(hk.transform(forward))
    params = f.init(jax.random.key(0), x_nhwc)
    m = layouts.mapping_by_name(
        net.state_dict(),
        "haiku",
        template=params,
        layouts=FLATTEN,
        rename={"conv": "conv2_d", "fc": "linear"},
    )
    out = f.apply(m.to_jax(net.state_dict()), x_nhwc)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-5, atol=1e-5)


def test_mapping_errors_name_the_mismatch():
    net, *_ = _inputs()
    template = {
        "conv": {"kernel": np.zeros((3, 3, 2, 5)), "bias": np.zeros(5)},
        "fc": {"kernel": np.zeros((4, 60)), "bias": np.zeros(4)},
    }  # kernel stored the torch way
    with pytest.raises(
        ValueError, match=r"'fc.weight' \(4, 60\) becomes \(60, 4\).*'fc/kernel' is \(4, 60\)"
    ):
        layouts.mapping_by_name(net.state_dict(), "nnx", template=template)
    with pytest.raises(ValueError, match="'fc.weight' maps to dense/kernel"):
        layouts.mapping_by_name(net.state_dict(), "nnx", template=template, rename={"fc": "dense"})
    with pytest.raises(ValueError, match="no torch tensor maps to the template's \\['extra/bias'\\]"):
        template = {
            **template,
            "fc": {"kernel": np.zeros((60, 4)), "bias": np.zeros(4)},
            "extra": {"bias": np.zeros(1)},
        }
        layouts.mapping_by_name(net.state_dict(), "nnx", template=template)
    with pytest.raises(ValueError, match="no rule for 'bn.running_mean'"):
        layouts.mapping_by_name({"bn.running_mean": np.zeros(3)}, "nnx")


def test_unmapped_parameters_are_refused():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    mapping = layouts.ParamMapping((layouts.Entry("0.weight", ("a", "kernel"), layouts.LINEAR),))
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match=r"missing from the mapping: \['0.bias', '1.weight', '1.bias'\]"):
        training.compare_training(model, opt, lambda p, b: 0.0, tc.adam(), mapping, [])


# ------------------------------------------------------------------------------------------ CLI, extras


def test_cli_registers_parity_run(tmp_path):
    import argparse

    parser = argparse.ArgumentParser(prog="adaptx")
    sub = parser.add_subparsers(dest="command")
    p = training_cli.register(sub)
    args = parser.parse_args(
        [
            "parity-run",
            "--model",
            "all",
            "--optimizer",
            "amsgrad",
            "--steps",
            "300",
            "--out",
            str(tmp_path / "f.png"),
        ]
    )
    assert args.func is training_cli.run and args.model == ["mlp", "cnn"] and args.optimizer == ["amsgrad"]
    undocumented = [a.dest for a in p._actions if not a.help]
    assert undocumented == [], undocumented
    with pytest.raises(SystemExit):
        parser.parse_args(["parity-run", "--model", "resnet"])


def test_figure_and_table(tmp_path):
    entries = []
    for opt in training.DIGITS_OPTIMIZERS:
        pair, res = mlp(opt)
        entries.append(
            {
                "model": "mlp",
                "optimizer": opt,
                "label": pair.label,
                "adaptx": res["adaptx"],
                "optax_name": pair.optax_name,
                "optax": res[pair.optax_name],
                "floor": res.get("torch, rows permuted"),
            }
        )
    text = training_cli.table(entries, TOL)
    assert text.count("| pass |") == 3 and "| step 1 (" in text and "| step 2 (" in text
    path = tmp_path / "run.png"
    training_cli.plot(entries, str(path), TOL)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("No module named 'torch' (blocked)")

    sys.meta_path.insert(0, NoTorch())
    """
)


def test_without_torch_import_works_and_running_names_the_extra():
    code = BLOCK_TORCH + textwrap.dedent(
        """
        from adaptx.parity import layouts, training, training_cli
        try:
            training.compare_training(None, None, None, None, None, [])
        except training.MissingDependencyError as err:
            print("ERR", err)
        sys.exit(training_cli.main(["--model", "mlp", "--steps", "3", "--no-plot"]))
        """
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "ERR PyTorch is not installed" in proc.stdout and "pip install 'adaptx[parity]'" in proc.stdout
    err_lines = proc.stderr.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("adaptx parity-run: PyTorch is not installed")
    assert "pip install 'adaptx[parity]'" in err_lines[0]
