//! The convolutional test graph the browser tests run on WebGPU and WebNN.

use ipfs_accelerate_tensor::{Conv2dOptions, DType, Graph, GraphBuilder, Pool2dOptions, Tensor, Weights};

/// Deterministic values in `[-scale, scale)`.
fn tensor(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_f32(shape.to_vec(), &v).unwrap()
}

fn conv(padding: [usize; 4], strides: [usize; 2], dilations: [usize; 2], groups: usize) -> Conv2dOptions {
    Conv2dOptions { padding, strides, dilations, groups }
}

fn pool(window_dimensions: [usize; 2], padding: [usize; 4], strides: [usize; 2]) -> Pool2dOptions {
    Pool2dOptions { window_dimensions, padding, strides, dilations: [1, 1] }
}

/// The ops of a mobile network (EfficientNet-Lite) on a batch of two images:
/// conv2d (3×3 stride 2 with asymmetric padding and bias, 1×1, depthwise 3×3
/// and 5×5 stride 2, two groups, dilation 2), ReLU6 as clamp, a padded
/// average pool (counting only inside positions), a max pool and a global
/// average pool. Returns the graph, its weights and its input.
pub fn mobile_ops_graph() -> (Graph, Weights, Vec<(String, Tensor)>) {
    let mut b = GraphBuilder::new();
    let x = b.input("image", DType::Float32, [2, 3, 17, 16]).unwrap();
    let w = |b: &mut GraphBuilder, name: &str, shape: &[usize], seed: u64| {
        b.constant(name, tensor(shape, seed, 0.5)).unwrap()
    };
    let stem = w(&mut b, "stem", &[8, 3, 3, 3], 31);
    let stem_b = w(&mut b, "stem.b", &[8], 32);
    let y = b.conv2d(x, stem, Some(stem_b), conv([0, 1, 0, 1], [2, 2], [1, 1], 1)).unwrap(); // [2, 8, 8, 8]
    let y = b.clamp(y, 0.0, 6.0).unwrap();
    let dw3 = w(&mut b, "dw3", &[8, 1, 3, 3], 33);
    let d3 = b.conv2d(y, dw3, None, conv([1, 1, 1, 1], [1, 1], [1, 1], 8)).unwrap();
    let dw5 = w(&mut b, "dw5", &[8, 1, 5, 5], 34);
    let dw5_b = w(&mut b, "dw5.b", &[8], 35);
    let d5 = b.conv2d(y, dw5, Some(dw5_b), conv([1, 2, 1, 2], [2, 2], [1, 1], 8)).unwrap(); // [2, 8, 4, 4]
    let pw = w(&mut b, "pw", &[12, 8, 1, 1], 36);
    let p = b.conv2d(d3, pw, None, Conv2dOptions::default()).unwrap(); // [2, 12, 8, 8]
    let gw = w(&mut b, "grouped", &[6, 6, 3, 3], 37);
    let g = b.conv2d(p, gw, None, conv([1, 0, 0, 1], [1, 1], [1, 1], 2)).unwrap();
    let dil = w(&mut b, "dilated", &[4, 12, 3, 3], 38);
    let di = b.conv2d(p, dil, None, conv([2, 2, 2, 2], [1, 1], [2, 2], 1)).unwrap();
    let avg = b.average_pool2d(p, pool([3, 3], [1, 1, 1, 1], [2, 2])).unwrap();
    let max = b.max_pool2d(p, pool([3, 3], [0, 1, 1, 0], [2, 2])).unwrap();
    let global = b.average_pool2d(d5, Pool2dOptions::global(4, 4)).unwrap();
    let outs = [
        ("stem_relu6", y),
        ("depthwise3", d3),
        ("depthwise5_s2", d5),
        ("pointwise", p),
        ("grouped", g),
        ("dilated", di),
        ("avg_pool", avg),
        ("max_pool", max),
        ("global_avg", global),
    ];
    let (graph, weights) = b.build(&outs).unwrap();
    let inputs = vec![("image".to_string(), tensor(&[2, 3, 17, 16], 39, 2.0))];
    (graph, weights, inputs)
}
