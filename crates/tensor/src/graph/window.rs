//! Shape inference of the windowed ops: `conv2d` and the 2-D pools (NCHW).

use super::{Conv2dOptions, OperandDesc, Pool2dOptions};
use crate::{DType, Error, Result};

/// Output length of one spatial axis of a windowed op (floor rounding):
/// `(size + pad_begin + pad_end - dilation*(window-1) - 1) / stride + 1`,
/// or `None` when the dilated window does not fit in the padded input.
pub fn window_output_size(
    size: usize,
    pad: [usize; 2],
    window: usize,
    stride: usize,
    dilation: usize,
) -> Option<usize> {
    let padded = size.checked_add(pad[0])?.checked_add(pad[1])?;
    let extent = dilation.checked_mul(window.checked_sub(1)?)?.checked_add(1)?;
    if stride == 0 || padded < extent {
        return None;
    }
    Some((padded - extent) / stride + 1)
}

/// `[N, C, H, W]` of a rank-4 float32/float16 input, or an error naming `op`.
fn nchw(op: &str, x: &OperandDesc) -> Result<[usize; 4]> {
    if !x.dtype.is_float() {
        return Err(Error::dtype(op, "float32 or float16", x.dtype));
    }
    match *x.shape.dims() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::shape(op, format!("the input must be 4-D NCHW [N, C, H, W], got {}", x.shape))),
    }
}

/// The output spatial size, or an error explaining which axis does not fit.
#[allow(clippy::too_many_arguments)]
fn spatial(
    op: &str,
    hw: [usize; 2],
    padding: [usize; 4],
    window: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
) -> Result<[usize; 2]> {
    if strides.contains(&0) || dilations.contains(&0) {
        return Err(Error::invalid(op, format!("strides {strides:?} and dilations {dilations:?} must be at least 1")));
    }
    if window.contains(&0) {
        return Err(Error::invalid(op, format!("the window {window:?} must be at least 1×1")));
    }
    let mut out = [0; 2];
    for (axis, name) in ["height", "width"].iter().enumerate() {
        let pad = [padding[2 * axis], padding[2 * axis + 1]];
        out[axis] =
            window_output_size(hw[axis], pad, window[axis], strides[axis], dilations[axis]).ok_or_else(|| {
                Error::shape(
                    op,
                    format!(
                        "the output {name} would be below 1: input {name} {} padded by {pad:?} is smaller than the \
                     window {} at dilation {}",
                        hw[axis], window[axis], dilations[axis]
                    ),
                )
            })?;
    }
    Ok(out)
}

/// `conv2d(input, filter[, bias])` with WebNN's validation.
pub(super) fn conv2d(o: &Conv2dOptions, inputs: &[&OperandDesc]) -> Result<OperandDesc> {
    let name = "conv2d";
    let (x, f) = (inputs[0], inputs[1]);
    let [n, c, h, w] = nchw(name, x)?;
    if f.dtype != x.dtype {
        return Err(Error::invalid(name, format!("input and filter differ in dtype: {} and {}", x.dtype, f.dtype)));
    }
    let [oc, fc, kh, kw] = match *f.shape.dims() {
        [a, b, c, d] => [a, b, c, d],
        _ => {
            return Err(Error::shape(
                name,
                format!("the filter must be 4-D OIHW [O, C/groups, kH, kW], got {}", f.shape),
            ))
        }
    };
    let g = o.groups;
    if g == 0 || !c.is_multiple_of(g) || !oc.is_multiple_of(g) {
        return Err(Error::invalid(
            name,
            format!(
                "groups {g} must be at least 1 and divide both the input channels {c} and the output channels {oc}"
            ),
        ));
    }
    if fc.checked_mul(g) != Some(c) {
        return Err(Error::shape(
            name,
            format!(
                "the filter {} has {fc} input channels but the input {} with {g} groups needs C/groups = {}",
                f.shape,
                x.shape,
                c / g
            ),
        ));
    }
    if let Some(b) = inputs.get(2) {
        if b.dtype != x.dtype || b.shape.dims() != [oc] {
            return Err(Error::shape(
                name,
                format!("the bias must be {}[{oc}] (one per output channel), got {b}", x.dtype),
            ));
        }
    }
    let [oh, ow] = spatial(name, [h, w], o.padding, [kh, kw], o.strides, o.dilations)?;
    Ok(OperandDesc::new(x.dtype, [n, oc, oh, ow]))
}

/// `averagePool2d` / `maxPool2d` with WebNN's validation.
pub(super) fn pool2d(name: &str, o: &Pool2dOptions, x: &OperandDesc) -> Result<OperandDesc> {
    let [n, c, h, w] = nchw(name, x)?;
    let [oh, ow] = spatial(name, [h, w], o.padding, o.window_dimensions, o.strides, o.dilations)?;
    Ok(OperandDesc::new(x.dtype, [n, c, oh, ow]))
}

/// `clamp(x)`: bounds must be ordered numbers.
pub(super) fn clamp(min_value: f32, max_value: f32, x: &OperandDesc) -> Result<OperandDesc> {
    if x.dtype != DType::Float32 && x.dtype != DType::Float16 {
        return Err(Error::dtype("clamp", "float32 or float16", x.dtype));
    }
    if min_value.is_nan() || max_value.is_nan() || min_value > max_value {
        return Err(Error::invalid(
            "clamp",
            format!("minValue {min_value} must not exceed maxValue {max_value} (and neither may be NaN)"),
        ));
    }
    Ok(x.clone())
}
