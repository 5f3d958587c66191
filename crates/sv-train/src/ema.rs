//! The exponential moving average of a model's parameters, kept beside them on their
//! device: updating it after a step reads nothing back to the host.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use sv_models::weights::flat_params_of;

use crate::checkpoint::Values;

/// `avg ← decay·avg + (1 − decay)·θ` for every float parameter θ, by parameter path.
#[derive(Debug, Clone)]
pub struct MovingAverage {
    decay: f32,
    /// Shape and flattened values of each parameter's average, off the autodiff graph.
    avg: BTreeMap<String, (Vec<usize>, Tensor<1>)>,
}

impl MovingAverage {
    /// An average that starts at `module`'s current parameters.
    pub fn new<M: Module>(module: &M, decay: f32) -> Self {
        Self {
            decay,
            avg: flat_params_of(module),
        }
    }

    /// An average restored from a checkpoint's values, on `device`.
    pub fn from_values(values: &Values, decay: f32, device: &Device) -> Self {
        let device = device.clone().inner();
        let avg = values
            .iter()
            .map(|(path, (shape, v))| {
                let t = Tensor::from_data(TensorData::new(v.clone(), [v.len()]), &device);
                (path.clone(), (shape.clone(), t))
            })
            .collect();
        Self { decay, avg }
    }

    /// Move the average towards `module`'s parameters; paths the average does not hold
    /// are left out.
    pub fn update<M: Module>(&mut self, module: &M) {
        let d = self.decay;
        for (path, (_, p)) in flat_params_of(module) {
            if let Some((_, a)) = self.avg.get_mut(&path) {
                *a = a.clone().mul_scalar(d) + p.mul_scalar(1.0 - d);
            }
        }
    }

    /// The average's values, read back to the host (for a checkpoint or the final model).
    pub fn values(&self) -> Values {
        self.avg
            .iter()
            .map(|(path, (shape, t))| {
                (
                    path.clone(),
                    (shape.clone(), sv_models::weights::values_of(t.clone())),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;
    use crate::checkpoint::params_of;

    #[test]
    fn the_average_equals_the_host_formula_and_round_trips_through_values() {
        let device = Device::default();
        let a: Linear = LinearConfig::new(5, 3).init(&device);
        let b: Linear = LinearConfig::new(5, 3).init(&device);
        let mut avg = MovingAverage::new(&a, 0.9);
        avg.update(&b);
        let (pa, pb) = (params_of(&a), params_of(&b));
        let got = avg.values();
        for (path, (shape, v)) in &got {
            let (_, x) = &pa[path];
            let (_, y) = &pb[path];
            assert_eq!(shape, &pa[path].0);
            let d = 0.9f32;
            let want: Vec<f32> = x
                .iter()
                .zip(y)
                .map(|(x, y)| d * x + (1.0 - d) * y)
                .collect();
            assert_eq!(v, &want, "{path}");
        }
        let back = MovingAverage::from_values(&got, 0.9, &device.autodiff());
        assert_eq!(back.values(), got);
    }
}
