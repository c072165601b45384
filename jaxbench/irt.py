"""Multidimensional 2PL item response theory: MAP fits of items and abilities (SPEC section 4).

The model is the one tinyBenchmarks (Polo et al., 2024) uses to predict correctness,

    P(y_ij = 1) = sigmoid(sum_d clip(a_jd * theta_id - b_j, -30, 30)),

so that, away from the clip, the logit is ``a_j . theta_i - D * b_j`` (``D`` = number of
dimensions). Parameters are fitted by maximum a posteriori with fixed Gaussian priors
``theta_i ~ N(0, I)``, ``a_jd ~ N(0, prior_scale^2)``, ``b_j ~ N(0, prior_scale^2)``, using
full-batch Adam inside one ``lax.while_loop``.

Where this differs from tinyBenchmarks: they fit items with py-irt's ``multidim_2pl`` model by
stochastic variational inference (a mean-field Normal guide under hierarchical Normal/Gamma
hyper-priors, Adam lr 0.1, 2000 epochs, no clip in the fitting likelihood) and take the guide
means; the clip only appears in their prediction (``item_curve``), and they fit the ability of
a new model by unpenalised maximum likelihood (BFGS). Here both fits are MAP estimates of the
same clipped model, which keeps them finite when a model answers every anchor correctly, and
makes the item and ability fits one consistent objective.

Loss normalisation: every reported loss (and the early-stopping tolerance) is the negative
log posterior divided by the number of observed cells (``max(sum(observed), 1)``), i.e. the
mean negative log posterior per observed cell. Dividing by a constant does not move the
optimum, and it makes ``tolerance`` (a relative change) mean the same for any matrix size.

Speed: the clip makes the logit an elementwise [models, items, dims] sum, about ten times the
cost of the matmul ``theta @ a.T - D * b``. Both are equal while
``max_d(max_i|theta_id| * max_j|a_jd|) + max_j|b_j| < 30`` (no term can reach the clip), so
the fit runs a matmul phase while that bound holds and then continues, with the same Adam
state, on the exact clipped objective. Under ``vmap`` the second loop costs nothing unless some
run reaches the clip. vmapped and looped fits agree to float32 rounding, not bitwise (XLA sums
in a different order), so an early stop can move by a step or two between the two.

Responses must be binary (0/1). Graded scores are thresholded with :func:`binarize` by the
caller (``score >= 0.5`` counts as correct), and the caller reports that it did so. Inside
``jit``/``vmap`` only shape checks can run; values strictly between 0 and 1 then act as soft
labels in the cross-entropy.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._checks import check_key as _check_key
from ._checks import is_concrete as _is_concrete

#: Per-dimension clip of tinyBenchmarks' ``item_curve``.
LOGIT_CLIP = 30.0


class IRTParams(NamedTuple):
    """Parameters of the multidimensional 2PL model.

    Attributes:
        theta: float32[models, dims] abilities.
        a: float32[items, dims] discriminations.
        b: float32[items] difficulties (the logit subtracts ``dims * b``).
    """

    theta: jax.Array
    a: jax.Array
    b: jax.Array


class IRTFit(NamedTuple):
    """Result of :func:`fit_irt`.

    Attributes:
        params: the MAP parameters.
        loss: float32[] mean negative log posterior per observed cell at ``params``.
        steps: int32[] Adam steps taken (``< max_steps`` when stopped early).
    """

    params: IRTParams
    loss: jax.Array
    steps: jax.Array


def binarize(scores):
    """Thresholds graded scores for the binary IRT model: ``score >= 0.5`` is correct.

    Args:
        scores: float[...] scores in [0, 1]; NaN marks a missing cell and stays NaN.

    Returns:
        float32[...] with values 0, 1 or NaN.
    """
    scores = jnp.asarray(scores, dtype=jnp.float32)
    return jnp.where(jnp.isnan(scores), jnp.nan, (scores >= 0.5).astype(jnp.float32))


def _clipped_logits(theta, a, b):
    """logits[items] for one model: the exact clipped tinyBenchmarks form."""
    return jnp.clip(a * theta[None, :] - b[:, None], -LOGIT_CLIP, LOGIT_CLIP).sum(axis=-1)


def predict_probability(theta, a, b):
    """Probability that one model answers each item correctly.

    Args:
        theta: float32[dims] ability of the model.
        a: float32[items, dims] discriminations.
        b: float32[items] difficulties.

    Returns:
        float32[items] success probabilities.
    """
    return jax.nn.sigmoid(_clipped_logits(theta, a, b))


def predict_probabilities(params: IRTParams):
    """Success probabilities float32[models, items] of every model in ``params``."""
    return jax.vmap(predict_probability, in_axes=(0, None, None))(params.theta, params.a, params.b)


def _bernoulli_log_likelihood(responses, logits):
    # y log s(z) + (1 - y) log s(-z) with log s(-z) = log s(z) - z: one log_sigmoid per cell,
    # finite where the sigmoid saturates (never log(sigmoid)).
    return jax.nn.log_sigmoid(logits) - (1.0 - responses) * logits


def _negative_log_posterior(params, responses, weights, prior_scale, *, exact):
    """Mean negative log posterior per observed cell; ``exact=False`` drops the clip."""
    if exact:
        logits = jax.vmap(_clipped_logits, in_axes=(0, None, None))(*params)
    else:
        dims = params.theta.shape[-1]
        logits = jnp.matmul(params.theta, params.a.T, precision=jax.lax.Precision.HIGHEST)
        logits = logits - dims * params.b[None, :]
    log_likelihood = jnp.sum(weights * _bernoulli_log_likelihood(responses, logits))
    log_prior = -0.5 * (
        jnp.sum(params.theta**2) + (jnp.sum(params.a**2) + jnp.sum(params.b**2)) / prior_scale**2
    )
    return -(log_likelihood + log_prior) / jnp.maximum(jnp.sum(weights), 1.0)


def _clip_inactive(params):
    # |a_jd theta_id - b_j| <= max_i|theta_id| max_j|a_jd| + max_j|b_j|: below the clip, the
    # clipped logit equals the matmul logit exactly, at a fraction of the cost.
    bound = jnp.max(jnp.max(jnp.abs(params.theta), axis=0) * jnp.max(jnp.abs(params.a), axis=0))
    return bound + jnp.max(jnp.abs(params.b)) < LOGIT_CLIP


class _LoopState(NamedTuple):
    step: jax.Array
    params: object
    opt_state: object
    loss: jax.Array
    calm_steps: jax.Array


def _adam_phase(state, value_and_grad, optimizer, keep_going, max_steps, tolerance, patience):
    """Adam steps until ``max_steps``, convergence, a non-finite loss, or ``keep_going`` fails.

    Converged means a relative loss change ``< tolerance`` on ``patience`` consecutive steps.
    """

    def cond(s):
        return (
            (s.step < max_steps)
            & (s.calm_steps < patience)
            & ~jnp.isnan(s.loss)
            & keep_going(s.params)
        )

    def body(s):
        loss, grads = value_and_grad(s.params)
        updates, opt_state = optimizer.update(grads, s.opt_state, s.params)
        params = optax.apply_updates(s.params, updates)
        calm = (s.step > 0) & (jnp.abs(loss - s.loss) < tolerance * jnp.abs(s.loss))
        calm_steps = jnp.where(calm, s.calm_steps + 1, 0)
        return _LoopState(s.step + 1, params, opt_state, loss, calm_steps)

    return jax.lax.while_loop(cond, body, state)


def _initial_state(params, optimizer):
    zero = jnp.zeros((), jnp.int32)
    return _LoopState(zero, params, optimizer.init(params), jnp.asarray(jnp.inf, jnp.float32), zero)


def _check_fit_settings(max_steps, learning_rate, tolerance, patience, prior_scale=1.0):
    if _is_concrete(max_steps) and (
        isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 0
    ):
        raise ValueError(f"max_steps must be a non-negative int; got {max_steps!r}")
    if _is_concrete(learning_rate, tolerance, patience, prior_scale):
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate!r}")
        if not float(tolerance) >= 0:
            raise ValueError(f"tolerance must be >= 0; got {tolerance!r}")
        if not int(patience) >= 1:
            raise ValueError(f"patience must be >= 1; got {patience!r}")
        if not float(prior_scale) > 0:
            raise ValueError(f"prior_scale must be > 0; got {prior_scale!r}")


def _check_responses(responses, observed, expected_ndim, names):
    if responses.ndim != expected_ndim:
        raise ValueError(
            f"responses must be {expected_ndim}-D ({names}); got shape {responses.shape}"
        )
    if observed.shape != responses.shape:
        raise ValueError(
            f"observed must have the shape of responses {responses.shape}; got {observed.shape}"
        )
    if min(responses.shape) < 1:
        raise ValueError(f"responses must be non-empty; got shape {responses.shape}")
    if _is_concrete(responses, observed):
        responses, observed = np.asarray(responses, np.float64), np.asarray(observed, np.float64)
        if np.any(observed < 0) or not np.all(np.isfinite(observed)):
            raise ValueError("observed must be a boolean mask or finite non-negative weights")
        seen = responses[observed > 0]
        if not np.all((seen == 0) | (seen == 1)):
            raise ValueError(
                "responses must be 0/1 in observed cells; threshold graded scores with "
                "jaxbench.irt.binarize (score >= 0.5 is correct) and mask NaN cells"
            )


def _initial_params(key, responses, weights, dimensions):
    models, items = responses.shape
    # Start b at the difficulty matching each item's smoothed observed accuracy (the logit is
    # -D b when a.theta = 0), theta at a prior draw, and a small so the start is near-neutral.
    # One draw for theta and a: each threefry call costs about a second of CPU compile time.
    noise = jax.random.normal(key, (models + items, dimensions))
    accuracy = (jnp.sum(weights * responses, 0) + 0.5) / (jnp.sum(weights, 0) + 1.0)
    return IRTParams(
        theta=noise[:models],
        a=0.1 * noise[models:],
        b=-jax.scipy.special.logit(accuracy) / dimensions,
    )


@functools.partial(jax.jit, static_argnames=("dimensions",))
def _fit_irt(key, responses, weights, init, dimensions, max_steps, learning_rate, tolerance,
             patience, prior_scale):
    responses = jnp.where(weights > 0, responses, 0.0)  # a masked NaN must not reach 0 * NaN
    if init is None:
        init = _initial_params(key, responses, weights, dimensions)
    optimizer = optax.adam(learning_rate)

    def loss_grad(exact):
        return jax.value_and_grad(
            functools.partial(
                _negative_log_posterior, responses=responses, weights=weights,
                prior_scale=prior_scale, exact=exact,
            )
        )

    phase = functools.partial(
        _adam_phase, optimizer=optimizer, max_steps=max_steps, tolerance=tolerance,
        patience=patience,
    )
    # Fast phase while no clip can be active, then the exact clipped objective. Under vmap
    # the second loop only runs when some run actually reaches the clip.
    state = phase(_initial_state(init, optimizer), loss_grad(False), keep_going=_clip_inactive)
    state = phase(state, loss_grad(True), keep_going=lambda params: True)
    loss = _negative_log_posterior(state.params, responses, weights, prior_scale, exact=True)
    return IRTFit(state.params, loss, state.step)


def fit_irt(key, responses, observed, *, dimensions: int, max_steps: int = 2000,
            learning_rate=0.1, tolerance=1e-6, patience=5, prior_scale=1.0,
            init: IRTParams | None = None) -> IRTFit:
    """MAP fit of the multidimensional 2PL model to one binary response matrix.

    Full-batch Adam in one compiled ``lax.while_loop``; stops early once the relative change
    of the loss (mean negative log posterior per observed cell) is ``< tolerance`` for
    ``patience`` consecutive steps. Deterministic given ``key`` (it draws the initial theta
    and a). Vmap over runs with ``jax.vmap(functools.partial(fit_irt, dimensions=...))``.

    Args:
        key: typed PRNG key (``jax.random.key``).
        responses: float32[models, items] 0/1 correctness; any value in unobserved cells.
        observed: bool[models, items] mask (or non-negative float weights) of cells that
            enter the likelihood.
        dimensions: static number of latent dimensions D >= 1.
        max_steps: maximum number of Adam steps (traced: changing it does not recompile).
        learning_rate: Adam step size.
        tolerance: relative loss change that counts as converged; 0 runs ``max_steps``.
        patience: consecutive converged steps required to stop.
        prior_scale: standard deviation of the Gaussian priors on a and b (theta ~ N(0, I)).
        init: optional IRTParams to start from (a warm start); ``key`` is then unused.

    Returns:
        IRTFit(params, loss, steps); a diverging fit stops at the first NaN loss and returns it.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> responses = (jax.random.uniform(jax.random.key(1), (20, 30)) < 0.6).astype(float)
        >>> fit = fit_irt(jax.random.key(0), responses, jnp.ones((20, 30), bool), dimensions=2)
        >>> fit.params.theta.shape, fit.params.a.shape, fit.params.b.shape
        ((20, 2), (30, 2), (30,))
    """
    _check_key(key)
    responses, observed = jnp.asarray(responses), jnp.asarray(observed)
    _check_responses(responses, observed, 2, "models, items")
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)):
        raise ValueError(f"dimensions must be an int >= 1; got {dimensions!r}")
    if dimensions < 1:
        raise ValueError(f"dimensions must be an int >= 1; got {dimensions!r}")
    _check_fit_settings(max_steps, learning_rate, tolerance, patience, prior_scale)
    if init is not None:
        (models, items), dims = responses.shape, int(dimensions)
        init = IRTParams(*(jnp.asarray(p, jnp.float32) for p in init))
        expected = IRTParams((models, dims), (items, dims), (items,))
        for name, value, want in zip(IRTParams._fields, init, expected):
            if value.shape != want:
                raise ValueError(f"init.{name} must have shape {want}; got {value.shape}")
    return _fit_irt(
        key, responses.astype(jnp.float32), observed.astype(jnp.float32), init, int(dimensions),
        jnp.int32(max_steps), jnp.float32(learning_rate), jnp.float32(tolerance),
        jnp.int32(patience), jnp.float32(prior_scale),
    )


@jax.jit
def _fit_ability(key, responses, weights, a, b, max_steps, learning_rate, tolerance, patience):
    responses = jnp.where(weights > 0, responses, 0.0)

    def loss(theta):
        logits = _clipped_logits(theta, a, b)
        log_likelihood = jnp.sum(weights * _bernoulli_log_likelihood(responses, logits))
        return -(log_likelihood - 0.5 * jnp.sum(theta**2)) / jnp.maximum(jnp.sum(weights), 1.0)

    optimizer = optax.adam(learning_rate)
    # The objective is convex in theta wherever the clip is inactive, so the small random
    # start only breaks exact ties; the result does not depend on it beyond the tolerance.
    init = 0.1 * jax.random.normal(key, (a.shape[1],))
    state = _adam_phase(
        _initial_state(init, optimizer), jax.value_and_grad(loss), optimizer,
        lambda theta: True, max_steps, tolerance, patience,
    )
    return state.params


def fit_ability(key, responses, observed, a, b, *, max_steps: int = 2000, learning_rate=0.1,
                tolerance=1e-6, patience=5):
    """MAP ability of ONE new model with the item parameters held fixed (prior theta ~ N(0, I)).

    Fit on a subset of items (e.g. tinyBenchmarks anchors) by passing a padded item list with
    ``observed`` zero on the padding. Vmap over models with ``in_axes=(0, 0, 0, None, None)``.

    Args:
        key: typed PRNG key; only jitters the starting point.
        responses: float32[items] 0/1 correctness of the model.
        observed: bool[items] mask or non-negative float32[items] weights of the items used.
        a: float32[items, dims] fixed discriminations.
        b: float32[items] fixed difficulties.
        max_steps: maximum number of Adam steps (traced).
        learning_rate: Adam step size.
        tolerance: relative change of the per-item loss that counts as converged.
        patience: consecutive converged steps required to stop.

    Returns:
        float32[dims] MAP ability.
    """
    _check_key(key)
    responses, observed = jnp.asarray(responses), jnp.asarray(observed)
    a, b = jnp.asarray(a), jnp.asarray(b)
    _check_responses(responses, observed, 1, "items")
    if a.ndim != 2 or a.shape[0] != responses.shape[0] or a.shape[1] < 1:
        raise ValueError(
            f"a must be 2-D (items={responses.shape[0]}, dims>=1); got shape {a.shape}"
        )
    if b.shape != responses.shape:
        raise ValueError(f"b must be 1-D (items={responses.shape[0]},); got shape {b.shape}")
    _check_fit_settings(max_steps, learning_rate, tolerance, patience)
    return _fit_ability(
        key, responses.astype(jnp.float32), observed.astype(jnp.float32), a.astype(jnp.float32),
        b.astype(jnp.float32), jnp.int32(max_steps), jnp.float32(learning_rate),
        jnp.float32(tolerance), jnp.int32(patience),
    )
