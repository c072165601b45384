"""Tests of jaxbench.irt against independent float64 NumPy/SciPy references."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from jaxbench import irt

CLIP = 30.0


def simulate(num_models, num_items, dims, seed, difficulty_scale=0.5):
    """Known 2PL parameters and Bernoulli responses (unclipped: |logit terms| stay < 30)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(num_models, dims))
    a = rng.normal(size=(num_items, dims))
    b = rng.normal(0.0, difficulty_scale, size=num_items)
    probability = 1.0 / (1.0 + np.exp(-(theta @ a.T - dims * b)))
    responses = (rng.uniform(size=probability.shape) < probability).astype(np.float32)
    return theta, a, b, probability, responses, rng


def numpy_probability(theta, a, b):
    logits = np.clip(a[None] * theta[:, None] - b[None, :, None], -CLIP, CLIP).sum(-1)
    return 1.0 / (1.0 + np.exp(-logits))


def numpy_map_objective(theta, a, b, responses, observed, prior_scale, clip=CLIP):
    """Mean negative log posterior per observed cell and its gradient, float64, written apart."""
    terms = a[None] * theta[:, None] - b[None, :, None]
    inside = np.abs(terms) < clip
    logits = np.clip(terms, -clip, clip).sum(-1)
    log_lik = -responses * np.logaddexp(0, -logits) - (1 - responses) * np.logaddexp(0, logits)
    count = max(observed.sum(), 1)
    value = -np.where(observed, log_lik, 0).sum()
    value += 0.5 * (theta**2).sum() + 0.5 * ((a**2).sum() + (b**2).sum()) / prior_scale**2
    residual = np.where(observed, 1 / (1 + np.exp(-logits)) - responses, 0)[:, :, None] * inside
    grad_theta = (residual * a[None]).sum(1) + theta
    grad_a = (residual * theta[:, None]).sum(0) + a / prior_scale**2
    grad_b = -residual.sum((0, 2)) + b / prior_scale**2
    return value / count, (grad_theta / count, grad_a / count, grad_b / count)


def as_float64(params):
    return [np.asarray(p, np.float64) for p in params]


def held_out_log_likelihood(params, responses, held_out):
    probability = np.asarray(irt.predict_probabilities(params), np.float64)[held_out]
    outcome = responses[held_out]
    return np.mean(np.where(outcome == 1, np.log(probability), np.log1p(-probability)))


@pytest.fixture(scope="module")
def small():
    """30 x 60 binary matrix with ~15 % of cells unobserved."""
    *_, responses, rng = simulate(30, 60, 2, seed=1)
    observed = rng.uniform(size=responses.shape) > 0.15
    return responses, observed


def check_recovery(num_models, num_items, seed):
    *_, probability, responses, rng = simulate(num_models, num_items, 2, seed)
    observed = rng.uniform(size=responses.shape) > 0.1
    held_out = ~observed
    fits = {d: irt.fit_irt(jax.random.key(0), responses, observed, dimensions=d) for d in (1, 2)}
    fitted = np.asarray(irt.predict_probabilities(fits[2].params))
    assert np.corrcoef(fitted.ravel(), probability.ravel())[0, 1] >= 0.95
    one, two = (held_out_log_likelihood(fits[d].params, responses, held_out) for d in (1, 2))
    assert two > one + 0.01


def test_recovery_small():
    check_recovery(150, 1000, seed=0)


@pytest.mark.slow
def test_recovery_paper_size():
    check_recovery(200, 2000, seed=0)


def test_matches_scipy_lbfgs_map(small):
    responses, observed = small
    models, items = responses.shape
    fit = irt.fit_irt(jax.random.key(0), responses, observed, dimensions=2)
    shapes = [(models, 2), (items, 2), (items,)]
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]

    def objective(x):
        params = [p.reshape(s) for p, s in zip(np.split(x, sizes), shapes)]
        value, grads = numpy_map_objective(*params, responses, observed, 1.0)
        return value, np.concatenate([g.ravel() for g in grads])

    start = np.random.default_rng(5).normal(0, 0.3, size=sizes[-1] + items)
    reference = minimize(objective, start, jac=True, method="L-BFGS-B",
                         options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})
    assert reference.success
    ours, _ = numpy_map_objective(*as_float64(fit.params), responses, observed, 1.0)
    assert abs(ours - reference.fun) <= 1e-4 * reference.fun
    assert abs(float(fit.loss) - ours) <= 1e-5 * ours  # reported loss is the normalised objective
    assert 0 < int(fit.steps) < 2000  # stopped early


def clip_bound(theta, a, b):
    return np.max(np.abs(theta).max(0) * np.abs(a).max(0)) + np.abs(b).max()


def numpy_adam(params, responses, prior_scale, steps, clip=CLIP):
    """Textbook Adam (Kingma & Ba; lr 0.1, b1 0.9, b2 0.999, eps 1e-8) in float64."""
    params = as_float64(params)
    observed = np.ones_like(responses, bool)
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    bounds = []
    for step in range(1, steps + 1):
        bounds.append(clip_bound(*params))
        _, grads = numpy_map_objective(*params, responses, observed, prior_scale, clip)
        for i, g in enumerate(grads):
            first[i] = 0.9 * first[i] + 0.1 * g
            second[i] = 0.999 * second[i] + 0.001 * g**2
            update = first[i] / (1 - 0.9**step) / (np.sqrt(second[i] / (1 - 0.999**step)) + 1e-8)
            params[i] = params[i] - 0.1 * update
    return params, bounds + [clip_bound(*params)]


def clip_case(name):
    """Warm starts where the clip matters: far past it, or about to reach it."""
    rng = np.random.default_rng(0)
    theta, a, b = rng.normal(size=(30, 2)), rng.normal(size=(60, 2)), rng.normal(size=60)
    if name == "clipped":  # |a_jd theta_id| up to ~70 on random answers; clipped terms cancel
        responses = (rng.uniform(size=(30, 60)) < 0.6).astype(float)
        init, steps = (theta, 12 * a, b), 20
    else:  # deterministic answers of a steep model: discriminations grow through the clip
        responses = (theta @ (15 * a).T - 2 * b > 0).astype(float)
        shrink = 27.0 / clip_bound(theta, 15 * a, b)  # start 10 % below the clip
        init, steps = (theta, 15 * shrink * a, shrink * b), 60
    return responses, irt.IRTParams(*(np.float32(x) for x in init)), steps


@pytest.mark.parametrize("case", ["clipped", "crossing"])
def test_clipped_objective_matches_numpy_adam(case):
    """From a warm start the fit must follow Adam on the CLIPPED objective, including the switch
    from the unclipped fast path. Short runs: float32/float64 Adam drift apart much later."""
    responses, init, steps = clip_case(case)
    expected, bounds = numpy_adam(init, responses, 50.0, steps)
    fit = irt.fit_irt(jax.random.key(0), responses, np.ones_like(responses, bool), dimensions=2,
                      prior_scale=50.0, tolerance=0.0, max_steps=steps, init=init)
    assert int(fit.steps) == steps
    fitted = np.asarray(irt.predict_probabilities(fit.params))
    np.testing.assert_allclose(fitted, numpy_probability(*expected), atol=2e-4)
    reference, _ = numpy_map_objective(*expected, responses, np.ones_like(responses, bool), 50.0)
    np.testing.assert_allclose(float(fit.loss), reference, rtol=1e-4)
    if case == "clipped":  # the clip must change the answer for this test to mean anything
        unclipped, _ = numpy_adam(init, responses, 50.0, steps, clip=np.inf)
        assert np.abs(numpy_probability(*unclipped) - numpy_probability(*expected)).max() > 0.05
    else:
        assert bounds[0] < CLIP < bounds[-1]


def test_mask_removes_cells(small):
    responses, observed = small
    altered = np.where(observed, responses, 1 - responses)
    altered[~observed & (np.arange(responses.shape[1]) % 2 == 0)] = np.nan
    fits = [irt.fit_irt(jax.random.key(3), y, observed, dimensions=2) for y in (responses, altered)]
    jax.tree.map(np.testing.assert_array_equal, fits[0], fits[1])
    unmasked = irt.fit_irt(jax.random.key(3), responses, np.ones_like(observed), dimensions=2)
    assert not np.allclose(unmasked.params.b, fits[0].params.b)


def test_deterministic_from_key(small):
    responses, observed = small
    fit = functools.partial(irt.fit_irt, responses=responses, observed=observed, dimensions=2)
    jax.tree.map(np.testing.assert_array_equal, fit(jax.random.key(7)), fit(jax.random.key(7)))
    assert not np.allclose(fit(jax.random.key(7)).params.a, fit(jax.random.key(8)).params.a)


def test_vmap_matches_loop(small):
    rng = np.random.default_rng(11)
    runs = 3
    responses = (rng.uniform(size=(runs, *small[0].shape)) < 0.6).astype(np.float32)
    observed = rng.uniform(size=responses.shape) > 0.2
    keys = jax.random.split(jax.random.key(2), runs)
    # tolerance 0 runs exactly max_steps: with early stopping the stop may legitimately move
    # by a few steps because float32 sums round differently under vmap.
    fit = functools.partial(irt.fit_irt, dimensions=2, max_steps=300, tolerance=0.0)
    batched = jax.vmap(fit)(keys, responses, observed)
    for run in range(runs):
        single = fit(keys[run], responses[run], observed[run])
        assert int(single.steps) == int(batched.steps[run])
        np.testing.assert_allclose(float(single.loss), float(batched.loss[run]), rtol=1e-5)
        run_params = jax.tree.map(lambda x: x[run], batched.params)
        np.testing.assert_allclose(
            irt.predict_probabilities(single.params), irt.predict_probabilities(run_params),
            atol=1e-3,
        )


def test_no_recompile_for_new_data(small):
    responses, observed = small
    irt.fit_irt(jax.random.key(0), responses, observed, dimensions=2)
    before = irt._fit_irt._cache_size()
    irt.fit_irt(jax.random.key(1), 1 - responses, ~observed, dimensions=2, learning_rate=0.05,
                tolerance=1e-5, prior_scale=2.0, max_steps=7, patience=2)
    assert irt._fit_irt._cache_size() == before


@pytest.fixture(scope="module")
def item_bank():
    theta, a, b, _, responses, _ = simulate(6, 1500, 2, seed=4)
    return theta, a.astype(np.float32), b.astype(np.float32), responses


def numpy_ability(responses, observed, a, b):
    """SciPy MAP of one model's theta; the a, b prior terms are constants here."""

    def objective(theta):
        value, (grad, _, _) = numpy_map_objective(
            theta[None], a.astype(np.float64), b.astype(np.float64), responses[None],
            observed[None], 1.0,
        )
        return value, grad.ravel()

    return minimize(objective, np.zeros(a.shape[1]), jac=True, method="L-BFGS-B",
                    options={"ftol": 1e-15, "gtol": 1e-10}).x


def test_fit_ability_recovers_theta(item_bank):
    theta, a, b, responses = item_bank
    observed = np.ones_like(responses, bool)
    keys = jax.random.split(jax.random.key(0), len(theta))
    fit = jax.vmap(irt.fit_ability, in_axes=(0, 0, 0, None, None))
    fitted = np.asarray(fit(keys, responses, observed, a, b))
    assert np.abs(fitted - theta).max() < 0.25
    # Adam stopped at the default tolerance is close to the exact MAP; run to the end, closer.
    exact = np.asarray(jax.vmap(functools.partial(irt.fit_ability, tolerance=0.0),
                                in_axes=(0, 0, 0, None, None))(keys, responses, observed, a, b))
    for model in range(2):
        reference = numpy_ability(responses[model], observed[model], a, b)
        np.testing.assert_allclose(fitted[model], reference, atol=1e-2)
        np.testing.assert_allclose(exact[model], reference, atol=2e-4)


def test_fit_ability_on_padded_anchors(item_bank):
    _, a, b, responses = item_bank
    rng = np.random.default_rng(9)
    anchors = np.sort(rng.choice(len(b), size=40, replace=False))
    padded = np.full(len(b), np.nan, np.float32)
    padded[anchors] = responses[0, anchors]
    mask = np.zeros(len(b), bool)
    mask[anchors] = True
    fit = functools.partial(irt.fit_ability, jax.random.key(0), tolerance=0.0)
    on_mask = fit(padded, mask, a, b)
    on_slice = fit(responses[0, anchors], np.ones(40, bool), a[anchors], b[anchors])
    np.testing.assert_allclose(on_mask, on_slice, atol=1e-4)
    reference = numpy_ability(responses[0, anchors], np.ones(40, bool), a[anchors], b[anchors])
    np.testing.assert_allclose(on_mask, reference, atol=2e-4)


def test_predict_probability_and_binarize():
    rng = np.random.default_rng(0)
    theta, a, b = rng.normal(size=(4, 3)), 8 * rng.normal(size=(5, 3)), 8 * rng.normal(size=5)
    params = irt.IRTParams(*(jnp.asarray(x, jnp.float32) for x in (theta, a, b)))
    np.testing.assert_allclose(irt.predict_probabilities(params), numpy_probability(theta, a, b),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(irt.predict_probability(params.theta[1], params.a, params.b),
                               numpy_probability(theta[1:2], a, b)[0], rtol=1e-5, atol=1e-6)
    binary = irt.binarize(np.array([0.0, 0.49, 0.5, 1.0, np.nan]))
    np.testing.assert_array_equal(binary, [0, 0, 1, 1, np.nan])


@pytest.mark.parametrize(
    "change, error, message",
    [
        (dict(responses=np.ones(5)), ValueError, "2-D"),
        (dict(observed=np.ones((4, 6), bool)), ValueError, "observed must have the shape"),
        (dict(responses=np.full((4, 5), 0.7)), ValueError, "binarize"),
        (dict(responses=np.full((4, 5), np.nan)), ValueError, "0/1"),
        (dict(dimensions=0), ValueError, "dimensions"),
        (dict(dimensions=2.0), ValueError, "dimensions"),
        (dict(learning_rate=-0.1), ValueError, "learning_rate"),
        (dict(prior_scale=0.0), ValueError, "prior_scale"),
        (dict(max_steps=-1), ValueError, "max_steps"),
        (dict(tolerance=-1e-6), ValueError, "tolerance"),
        (dict(patience=0), ValueError, "patience"),
        (dict(init=irt.IRTParams(np.zeros((4, 1)), np.zeros((5, 2)), np.zeros(5))), ValueError,
         r"init.a must have shape \(5, 1\)"),
        (dict(key=jax.random.PRNGKey(0)), TypeError, "jax.random.key"),
        (dict(responses=np.ones((0, 5)), observed=np.ones((0, 5), bool)), ValueError, "non-empty"),
    ],
)
def test_fit_irt_validation(change, error, message):
    arguments = dict(key=jax.random.key(0), responses=np.ones((4, 5)),
                     observed=np.ones((4, 5), bool), dimensions=1)
    arguments.update(change)
    with pytest.raises(error, match=message):
        irt.fit_irt(**arguments)


def test_fit_ability_validation():
    key, y, mask = jax.random.key(0), np.ones(5), np.ones(5, bool)
    with pytest.raises(ValueError, match="a must be 2-D"):
        irt.fit_ability(key, y, mask, np.ones((4, 2)), np.ones(5))
    with pytest.raises(ValueError, match="b must be 1-D"):
        irt.fit_ability(key, y, mask, np.ones((5, 2)), np.ones((5, 1)))
    with pytest.raises(ValueError, match="observed"):
        irt.fit_ability(key, y, -mask.astype(float), np.ones((5, 2)), np.ones(5))
