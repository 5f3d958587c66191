//! Fitting ensemble weights and per-member temperatures on validation predictions by
//! minimising log-loss (BFGS with a backtracking line search).
//!
//! The ensemble probability of sample n is `q_n = Σ_i w_i·σ(logit(p_in) / T_i)`, with the
//! weights on the simplex (`w = softmax(a)`) and `T_i = exp(τ_i)`, so the search is
//! unconstrained over `(a, τ)`.

use crate::error::{ModelError, Result};

/// Probabilities are clamped to `[EPS, 1 − EPS]` before taking logits or logs.
pub const EPS: f64 = 1e-7;

/// What to fit.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    /// Fit the weights (else they stay as given).
    pub weights: bool,
    /// Fit one temperature per member (else they stay as given).
    pub temperatures: bool,
    /// Iteration limit.
    pub max_iters: usize,
    /// Stop when the gradient's largest component falls below this.
    pub tolerance: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            weights: true,
            temperatures: true,
            max_iters: 500,
            tolerance: 1e-9,
        }
    }
}

/// Result of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Member weights, summing to 1.
    pub weights: Vec<f64>,
    /// Member temperatures (> 0).
    pub temperatures: Vec<f64>,
    /// Mean log-loss on the validation set at the fitted values.
    pub log_loss: f64,
    /// Mean log-loss at the starting values.
    pub initial_log_loss: f64,
    /// Iterations used.
    pub iterations: usize,
}

/// `σ(logit(p) / t)`.
pub fn temper(p: f64, t: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    let z = (p / (1.0 - p)).ln() / t;
    1.0 / (1.0 + (-z).exp())
}

/// Mean log-loss of the ensemble `weights`/`temperatures` on `probs[member][sample]`.
pub fn log_loss(probs: &[Vec<f64>], labels: &[bool], weights: &[f64], temps: &[f64]) -> f64 {
    let n = labels.len();
    (0..n)
        .map(|s| {
            let q: f64 = (0..probs.len())
                .map(|i| weights[i] * temper(probs[i][s], temps[i]))
                .sum::<f64>()
                .clamp(EPS, 1.0 - EPS);
            if labels[s] { -q.ln() } else { -(1.0 - q).ln() }
        })
        .sum::<f64>()
        / n as f64
}

/// The objective over the free parameters `x = (a, τ)` (only the fitted ones vary).
struct Objective<'a> {
    probs: &'a [Vec<f64>],
    labels: &'a [bool],
    logits: Vec<Vec<f64>>,
    fixed_w: Vec<f64>,
    fixed_t: Vec<f64>,
    opts: FitOptions,
}

impl Objective<'_> {
    fn members(&self) -> usize {
        self.probs.len()
    }

    fn unpack(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let m = self.members();
        let mut k = 0;
        let w = if self.opts.weights {
            let a = &x[..m];
            k = m;
            let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = a.iter().map(|v| (v - max).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        } else {
            self.fixed_w.clone()
        };
        let t = if self.opts.temperatures {
            x[k..k + m].iter().map(|v| v.exp()).collect()
        } else {
            self.fixed_t.clone()
        };
        (w, t)
    }

    /// Loss and gradient at `x`.
    fn eval(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let m = self.members();
        let n = self.labels.len() as f64;
        let (w, t) = self.unpack(x);
        let mut loss = 0.0;
        let mut grad_w = vec![0.0; m]; // ∂L/∂w_i
        let mut grad_tau = vec![0.0; m]; // ∂L/∂τ_i
        for (s, &y) in self.labels.iter().enumerate() {
            let p: Vec<f64> = (0..m)
                .map(|i| 1.0 / (1.0 + (-self.logits[i][s] / t[i]).exp()))
                .collect();
            let q_raw: f64 = (0..m).map(|i| w[i] * p[i]).sum();
            let q = q_raw.clamp(EPS, 1.0 - EPS);
            loss -= if y { q.ln() } else { (1.0 - q).ln() };
            // ∂(−log-lik)/∂q, zero where the clamp is active.
            let dq = if q_raw != q {
                0.0
            } else if y {
                -1.0 / q
            } else {
                1.0 / (1.0 - q)
            };
            for i in 0..m {
                grad_w[i] += dq * p[i];
                // ∂p/∂τ = −p(1−p)·logit/T.
                grad_tau[i] += dq * w[i] * (-p[i] * (1.0 - p[i]) * self.logits[i][s] / t[i]);
            }
        }
        let mut grad = Vec::with_capacity(x.len());
        if self.opts.weights {
            // Through the softmax: ∂L/∂a_j = w_j (∂L/∂w_j − Σ_i w_i ∂L/∂w_i).
            let mean: f64 = (0..m).map(|i| w[i] * grad_w[i]).sum();
            grad.extend((0..m).map(|j| w[j] * (grad_w[j] - mean) / n));
        }
        if self.opts.temperatures {
            grad.extend(grad_tau.iter().map(|g| g / n));
        }
        (loss / n, grad)
    }
}

/// Fit weights and/or temperatures on `probs[member][sample]` (each member's roadwork
/// probability) against `labels`, starting from `weights` and `temperatures`.
pub fn fit(
    probs: &[Vec<f64>],
    labels: &[bool],
    weights: &[f64],
    temperatures: &[f64],
    opts: FitOptions,
) -> Result<Fit> {
    let m = probs.len();
    if m == 0 || labels.is_empty() {
        return Err(ModelError::Config(
            "fitting needs at least one member and one validation sample".into(),
        ));
    }
    if weights.len() != m || temperatures.len() != m {
        return Err(ModelError::Config(format!(
            "{m} members but {} weights and {} temperatures",
            weights.len(),
            temperatures.len()
        )));
    }
    if let Some(i) = probs.iter().position(|p| p.len() != labels.len()) {
        return Err(ModelError::Config(format!(
            "member {i} has {} predictions for {} labels",
            probs[i].len(),
            labels.len()
        )));
    }
    if weights.iter().any(|w| *w <= 0.0) || temperatures.iter().any(|t| *t <= 0.0) {
        return Err(ModelError::Config(
            "starting weights and temperatures must be positive".into(),
        ));
    }
    let total: f64 = weights.iter().sum();
    let w0: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let objective = Objective {
        probs,
        labels,
        logits: probs
            .iter()
            .map(|p| {
                p.iter()
                    .map(|v| {
                        let v = v.clamp(EPS, 1.0 - EPS);
                        (v / (1.0 - v)).ln()
                    })
                    .collect()
            })
            .collect(),
        fixed_w: w0.clone(),
        fixed_t: temperatures.to_vec(),
        opts,
    };
    let mut x = Vec::new();
    if opts.weights {
        x.extend(w0.iter().map(|w| w.ln()));
    }
    if opts.temperatures {
        x.extend(temperatures.iter().map(|t| t.ln()));
    }
    let initial_log_loss = log_loss(probs, labels, &w0, temperatures);
    let iterations = if x.is_empty() {
        0
    } else {
        bfgs(&objective, &mut x, opts.max_iters, opts.tolerance)
    };
    let (w, t) = objective.unpack(&x);
    Ok(Fit {
        log_loss: log_loss(probs, labels, &w, &t),
        weights: w,
        temperatures: t,
        initial_log_loss,
        iterations,
    })
}

/// Minimise with BFGS (inverse-Hessian update) and Armijo backtracking; returns the
/// number of iterations.
fn bfgs(f: &Objective, x: &mut [f64], max_iters: usize, tol: f64) -> usize {
    let k = x.len();
    let mut h = identity(k);
    let (mut fx, mut g) = f.eval(x);
    for iter in 0..max_iters {
        if g.iter().all(|v| v.abs() < tol) {
            return iter;
        }
        let mut d: Vec<f64> = (0..k).map(|i| -dot(&h[i], &g)).collect();
        let mut slope = dot(&d, &g);
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            h = identity(k);
            d = g.iter().map(|v| -v).collect();
            slope = dot(&d, &g);
        }
        let mut step = 1.0;
        let (x_new, f_new, g_new) = loop {
            let cand: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + step * b).collect();
            let (fc, gc) = f.eval(&cand);
            if fc <= fx + 1e-4 * step * slope || step < 1e-12 {
                break (cand, fc, gc);
            }
            step *= 0.5;
        };
        let s: Vec<f64> = x_new.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if f_new >= fx && step < 1e-12 {
            return iter + 1; // no progress possible
        }
        x.copy_from_slice(&x_new);
        fx = f_new;
        g = g_new;
        if sy > 1e-12 {
            // H ← (I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ
            let rho = 1.0 / sy;
            let hy: Vec<f64> = (0..k).map(|i| dot(&h[i], &y)).collect();
            let yhy = dot(&y, &hy);
            for i in 0..k {
                for j in 0..k {
                    h[i][j] += -rho * (hy[i] * s[j] + s[i] * hy[j])
                        + (rho * rho * yhy + rho) * s[i] * s[j];
                }
            }
        }
    }
    max_iters
}

fn identity(k: usize) -> Vec<Vec<f64>> {
    (0..k)
        .map(|i| (0..k).map(|j| f64::from(u8::from(i == j))).collect())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let probs = vec![vec![0.9, 0.2, 0.6, 0.4], vec![0.7, 0.1, 0.3, 0.8]];
        let labels = [true, false, true, false];
        let f = Objective {
            probs: &probs,
            labels: &labels,
            logits: probs
                .iter()
                .map(|p| p.iter().map(|v: &f64| (v / (1.0 - v)).ln()).collect())
                .collect(),
            fixed_w: vec![0.5, 0.5],
            fixed_t: vec![1.0, 1.0],
            opts: FitOptions::default(),
        };
        let x = [0.3, -0.2, 0.4, -0.5];
        let (_, g) = f.eval(&x);
        for i in 0..4 {
            let (mut hi, mut lo) = (x, x);
            hi[i] += 1e-6;
            lo[i] -= 1e-6;
            let numeric = (f.eval(&hi).0 - f.eval(&lo).0) / 2e-6;
            assert!((numeric - g[i]).abs() < 1e-6, "∂{i}: {numeric} vs {}", g[i]);
        }
    }

    #[test]
    fn refuses_mismatched_inputs() {
        let probs = vec![vec![0.5, 0.5]];
        assert!(fit(&probs, &[true], &[1.0], &[1.0], FitOptions::default()).is_err());
        assert!(
            fit(
                &probs,
                &[true, false],
                &[1.0, 1.0],
                &[1.0],
                FitOptions::default()
            )
            .is_err()
        );
    }
}
