//! Parameter-space arithmetic on gradients: the pieces MAML needs (fast weights θ − α g, perturbations
//! θ ± ε v, linear combinations of gradients, norms), written once as module visitors and mappers.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// θ ← θ + scale · g for every parameter with a gradient.
///
/// With `leaf = false` the result stays attached to θ's graph (fast weights: a backward pass from a loss
/// at θ' reaches θ through the identity, the first-order MAML gradient). With `leaf = true` the result
/// is a fresh leaf that records its own gradients (a point at which to evaluate a gradient).
pub struct Shift<'a> {
    pub grads: &'a GradientsParams,
    pub scale: f32,
    pub leaf: bool,
}

impl ModuleMapper for Shift<'_> {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let g = self.grads.get::<D>(p.id);
        let (scale, leaf) = (self.scale, self.leaf);
        p.map(|t| {
            let device = t.device();
            let t = if leaf { t.detach() } else { t };
            let t = match g {
                Some(g) => t + g.to_device(&device).mul_scalar(scale),
                None => t,
            };
            // Arithmetic on a detached tensor is still a graph node; detach again to get a leaf.
            if leaf { t.detach().require_grad() } else { t }
        })
    }
}

/// A parameter with its values edited on the host: a fresh leaf with the same id, recording gradients
/// exactly when the old one did (not a node of a graph that is never run).
pub fn rewrite<const D: usize>(
    p: Param<Tensor<D>>,
    edit: impl FnOnce(&mut [f32]),
) -> Param<Tensor<D>> {
    p.map(|t| {
        let (shape, device, require_grad) = (t.shape(), t.device(), t.is_require_grad());
        let mut v: Vec<f32> = t
            .into_data()
            .try_into_vec_as::<f32>()
            .expect("f32 parameters");
        edit(&mut v);
        Tensor::from_data(burn::tensor::TensorData::new(v, shape), &device)
            .set_require_grad(require_grad)
    })
}

/// A parameter replaced by `f` of its value, computed on its device with nothing read back (so also on
/// WebGPU in a browser): a fresh leaf with the same id, recording gradients exactly when the old one did.
pub fn remap<const D: usize>(
    p: Param<Tensor<D>>,
    f: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Param<Tensor<D>> {
    p.map(|t| {
        let require_grad = t.is_require_grad();
        f(t.detach()).detach().set_require_grad(require_grad)
    })
}

/// Shifts a module's parameters; see [`Shift`].
pub fn shift<M: Module>(module: M, grads: &GradientsParams, scale: f32, leaf: bool) -> M {
    module.map(&mut Shift { grads, scale, leaf })
}

/// out = Σ_i w_i · g_i over the parameters of a module (a parameter missing from every g_i is left out).
struct Combine<'a> {
    terms: &'a [(f32, &'a GradientsParams)],
    out: GradientsParams,
}

impl ModuleVisitor for Combine<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let mut acc: Option<Tensor<D>> = None;
        for (w, g) in self.terms {
            if let Some(t) = g.get::<D>(p.id) {
                // A weight of 1 (sums of per-task gradients) needs no pass over the tensor.
                let t = if *w == 1.0 { t } else { t.mul_scalar(*w) };
                acc = Some(match acc {
                    Some(a) => a + t,
                    None => t,
                });
            }
        }
        if let Some(a) = acc {
            self.out.register(p.id, a);
        }
    }
}

pub fn combine<M: Module>(module: &M, terms: &[(f32, &GradientsParams)]) -> GradientsParams {
    let mut c = Combine {
        terms,
        out: GradientsParams::new(),
    };
    module.visit(&mut c);
    c.out
}

struct SqNorm<'a> {
    grads: &'a GradientsParams,
    acc: f64,
}

impl ModuleVisitor for SqNorm<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(p.id) {
            self.acc += g.powf_scalar(2.0).sum().into_scalar::<f32>() as f64;
        }
    }
}

/// Euclidean norm of a gradient over a module's parameters.
pub fn norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = SqNorm { grads, acc: 0.0 };
    module.visit(&mut v);
    v.acc.sqrt()
}

/// A copy of the module whose parameters are fresh leaves (detached from any graph, recording gradients).
pub fn releaf<M: Module>(module: M) -> M {
    let empty = GradientsParams::new();
    shift(module, &empty, 0.0, true)
}

/// Every float parameter of a module, flattened, in visiting order (kept on its device).
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        let t = p.val().detach();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// `a`'s parameters replaced, one by one in visiting order, by `w · a + (1 − w) · b`.
struct Interpolate {
    others: std::vec::IntoIter<Tensor<1>>,
    w: f32,
}

impl ModuleMapper for Interpolate {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let other = self.others.next().expect("the same architecture");
        let w = self.w;
        remap(p, |t| {
            let shape = t.shape();
            assert_eq!(
                shape.num_elements(),
                other.dims()[0],
                "the same architecture"
            );
            let other: Tensor<D> = other.to_device(&t.device()).reshape(shape);
            t.mul_scalar(w) + other.mul_scalar(1.0 - w)
        })
    }
}

/// The weight-space interpolation `w · a + (1 − w) · b` of two models of one architecture (two
/// fine-tunings of one general model), parameter by parameter: one network whose output is close to
/// the mean of the two outputs where the two lie near each other (Wortsman et al., 2022, "Robust
/// fine-tuning of zero-shot models", WiSE-FT), at the cost of one forward pass.
pub fn interpolate<M: Module>(a: M, b: &M, w: f32) -> M {
    let mut c = Collect(Vec::new());
    b.visit(&mut c);
    let n = c.0.len();
    let mut m = Interpolate {
        others: c.0.into_iter(),
        w,
    };
    let out = a.map(&mut m);
    assert_eq!(m.others.len(), 0, "the same architecture ({n} parameters)");
    out
}
