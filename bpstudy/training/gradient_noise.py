"""Gradient noise of each hidden layer, from per-example gradient norms, without ever
materialising a per-example gradient.

Layer i's Linear part z = a W + b has the batch gradient g = (dW, db) of the data loss
(a mean over the B examples of the batch, so g = mean_n g_n), and example n contributes

    g_n = B [a_n; 1] delta_n^T,   a_n: (fan_in,) the layer's input, delta_n: (fan_out,)
                                  dLoss/dz_n, which carries the loss's 1/B.

The Frobenius norm of an outer product is the product of the norms, so

    ||g_n||^2 = B^2 ||delta_n||^2 (||a_n||^2 + 1)        (the +1 is the bias b),

and, as mean_n <g_n, g> = <g, g>, the spread needs no per-example inner product:

    noise = mean_n ||g_n - g||^2 = mean_n ||g_n||^2 - ||g||^2.

From these, per layer:

    grad_snr  = ||g||^2 / noise, the gradient signal-to-noise ratio (the spread with
                1/B: a single example's gradient against the batch's);
    norm_test = sqrt(sum_n ||g_n - g||^2 / ((B - 1) B ||g||^2)) = 1 / sqrt((B - 1) grad_snr),
                the norm test of Byrd et al. (2012, eq. 3.9) as Cockpit computes it
                (f-dangel/cockpit at 1b7a59e, cockpit/quantities/norm_test.py,
                NormTest._compute: the sample variance with 1/(B - 1), and the largest
                theta for which the test passes). The batch is large enough for a descent
                step when norm_test <= theta, theta in (0, 1) (Cockpit tries 0.5 and 0.9);
                above it, a larger batch would help. Squared and with the spread's 1/B
                for 1/(B - 1), it is mean_n ||g_n - g||^2 / (B ||g||^2), against theta^2.

g is the data loss's gradient, without the L1/L2 terms (the same for every example: it
moves the signal, not the noise). With a learning rule other than backprop, delta_n is the
rule's error signal, so g_n and g are the rule's update, not the true gradient: the
statistics say how consistent the rule's proposal is across the batch. With batch norm,
delta_n is the error after the batch-norm backward pass, and the examples are coupled
through the batch statistics: g_n is then example n's term of the batch gradient, not the
gradient of its loss alone. A batch of one example has no spread: NaN. In float32 the
subtraction above leaves a relative error of about 1e-6 x (1 + grad_snr) in the noise.
"""

from __future__ import annotations

import numpy as np

from bpstudy.model import Network


def rowwise_sq_norms(A: np.ndarray) -> np.ndarray:
    """Sum of squares of each row of a 2-D array, as a batch of BLAS dot products
    (about twice as fast as einsum here)."""
    return np.matmul(A[:, None, :], A[:, :, None]).reshape(-1)


def input_sq_norms(net: Network, act_sq: np.ndarray) -> np.ndarray:
    """(depth, B): ||a_n||^2 of each hidden Linear layer's input, per example, given
    act_sq: (depth, B), the same of each layer's activation. Without residual skips or
    dropout, layer i's input is layer i-1's activation: nothing more to compute."""
    depth, B = act_sq.shape
    out = np.empty((depth, B))
    out[0] = rowwise_sq_norms(net.blocks[0].dense.x)
    if not net.arch.residual and not net.arch.dropout:
        out[1:] = act_sq[:-1]
    else:
        for i in range(1, depth):
            out[i] = rowwise_sq_norms(net.blocks[i].dense.x)
    return out


def error_sq_norms(net: Network, delta_sq: np.ndarray) -> np.ndarray:
    """(depth, B): ||delta_n||^2 at each hidden Linear layer's output. Without batch norm
    that is the pre-activation error whose norms `delta_sq` already holds."""
    if not net.arch.batch_norm:
        return delta_sq
    return np.stack([rowwise_sq_norms(b.dz) for b in net.blocks])


def hidden_biases(flat: np.ndarray, net: Network) -> np.ndarray:
    """(depth, width) view of the hidden layers' b inside a flat vector: they sit at equal
    strides after the weights (b alone, or b, gamma, beta with batch norm)."""
    depth, width = net.depth, net.arch.width
    start = net.slices["hidden.0.b"][0].start
    stride = net.slices["hidden.1.b"][0].start - start if depth > 1 else width
    return flat[start : start + depth * stride].reshape(depth, stride)[:, :width]


def data_grad_sq_norms(net: Network, grad_w_sq: np.ndarray) -> np.ndarray:
    """(depth,): ||g||^2 = ||dW||^2 + ||db||^2 of the data loss per hidden layer, given
    grad_w_sq, the squared norms of the W-parts of net.grad (which hold the L1/L2 terms)."""
    db = hidden_biases(net.grad, net)
    out = np.einsum("ij,ij->i", db, db).astype(np.float64)
    if not (net.l1 or net.l2):
        return out + grad_w_sq
    for i, b in enumerate(net.blocks):
        W = b.dense.W
        dW = b.dense.dW - net.l2 * W - net.l1 * np.sign(W)
        out[i] += np.dot(dW.ravel(), dW.ravel())
    return out


def noise_stats(
    err_sq: np.ndarray, in_sq: np.ndarray, signal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(grad_snr, norm_test), each (depth,), from err_sq = ||delta_n||^2 and in_sq =
    ||a_n||^2, both (depth, B), and signal = ||g||^2: (depth,)."""
    B = err_sq.shape[1]
    if B < 2:
        nan = np.full(signal.shape, np.nan)
        return nan, nan.copy()
    mean_sq = B * np.einsum("ln,ln->l", err_sq, in_sq + 1.0)  # mean_n ||g_n||^2
    noise = np.maximum(mean_sq - signal, 0.0)  # >= 0 in exact arithmetic
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = signal / noise
        return snr, np.sqrt(noise / ((B - 1) * signal))
