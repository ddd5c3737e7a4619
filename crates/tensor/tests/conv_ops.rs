//! The windowed ops (`conv2d`, `averagePool2d`, `maxPool2d`) and `clamp` on the
//! CPU backend against a naive f64 reference written here (plain loops over
//! every output and tap), plus their shape-inference errors and JSON form.

mod support;

use ipfs_accelerate_tensor::graph::Op;
use ipfs_accelerate_tensor::{Conv2dOptions, DType, Graph, GraphBuilder, Pool2dOptions, Tensor};
use support::*;

const F32: DType = DType::Float32;

/// Reference conv2d: input NCHW, filter OIHW, WebNN semantics.
fn conv_ref(x: &Nd, f: &Nd, bias: Option<&Nd>, o: &Conv2dOptions) -> Nd {
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let [oc, cg, kh, kw] = [f.shape[0], f.shape[1], f.shape[2], f.shape[3]];
    let og = oc / o.groups;
    assert_eq!(cg * o.groups, c);
    let out_size =
        |size: usize, p0: usize, p1: usize, k: usize, s: usize, d: usize| (size + p0 + p1 - d * (k - 1) - 1) / s + 1;
    let oh = out_size(h, o.padding[0], o.padding[1], kh, o.strides[0], o.dilations[0]);
    let ow = out_size(w, o.padding[2], o.padding[3], kw, o.strides[1], o.dilations[1]);
    Nd::from_fn(&[n, oc, oh, ow], |i| {
        let (b, m, oy, ox) = (i[0], i[1], i[2], i[3]);
        let g = m / og;
        let mut acc = bias.map_or(0.0, |bias| bias.data[m]);
        for ci in 0..cg {
            for ki in 0..kh {
                for kj in 0..kw {
                    let iy = (oy * o.strides[0] + ki * o.dilations[0]) as isize - o.padding[0] as isize;
                    let ix = (ox * o.strides[1] + kj * o.dilations[1]) as isize - o.padding[2] as isize;
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                        continue;
                    }
                    acc += x.at(&[b, g * cg + ci, iy as usize, ix as usize]) * f.at(&[m, ci, ki, kj]);
                }
            }
        }
        acc
    })
}

/// Reference pool: average over the window positions inside the input
/// (padding not counted), or their maximum; 0 for an empty window.
fn pool_ref(x: &Nd, o: &Pool2dOptions, max: bool) -> Nd {
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let [kh, kw] = o.window_dimensions;
    let oh = (h + o.padding[0] + o.padding[1] - o.dilations[0] * (kh - 1) - 1) / o.strides[0] + 1;
    let ow = (w + o.padding[2] + o.padding[3] - o.dilations[1] * (kw - 1) - 1) / o.strides[1] + 1;
    Nd::from_fn(&[n, c, oh, ow], |i| {
        let mut vals = Vec::new();
        for ki in 0..kh {
            for kj in 0..kw {
                let iy = (i[2] * o.strides[0] + ki * o.dilations[0]) as isize - o.padding[0] as isize;
                let ix = (i[3] * o.strides[1] + kj * o.dilations[1]) as isize - o.padding[2] as isize;
                if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                    vals.push(x.at(&[i[0], i[1], iy as usize, ix as usize]));
                }
            }
        }
        match (vals.is_empty(), max) {
            (true, _) => 0.0,
            (false, true) => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            (false, false) => vals.iter().sum::<f64>() / vals.len() as f64,
        }
    })
}

struct ConvCase {
    what: &'static str,
    input: [usize; 4],
    /// Output channels and kernel size.
    filter: [usize; 3],
    options: Conv2dOptions,
    bias: bool,
}

fn conv(padding: [usize; 4], strides: [usize; 2], dilations: [usize; 2], groups: usize) -> Conv2dOptions {
    Conv2dOptions { padding, strides, dilations, groups }
}

fn conv_cases() -> Vec<ConvCase> {
    let d = Conv2dOptions::default();
    vec![
        ConvCase {
            what: "3x3 stride 1 same",
            input: [1, 3, 9, 8],
            filter: [5, 3, 3],
            options: conv([1, 1, 1, 1], [1, 1], [1, 1], 1),
            bias: true,
        },
        ConvCase {
            what: "3x3 stride 1 asymmetric pad",
            input: [1, 4, 7, 9],
            filter: [6, 3, 3],
            options: conv([0, 2, 1, 0], [1, 1], [1, 1], 1),
            bias: false,
        },
        ConvCase {
            what: "3x3 stride 2 asymmetric pad (TF same)",
            input: [2, 3, 11, 10],
            filter: [8, 3, 3],
            options: conv([0, 1, 0, 1], [2, 2], [1, 1], 1),
            bias: true,
        },
        ConvCase {
            what: "3x3 stride 2 pad 1",
            input: [1, 5, 8, 8],
            filter: [4, 3, 3],
            options: conv([1, 1, 1, 1], [2, 2], [1, 1], 1),
            bias: false,
        },
        ConvCase { what: "1x1", input: [2, 16, 5, 6], filter: [12, 1, 1], options: d, bias: true },
        ConvCase { what: "1x1 no bias", input: [1, 7, 4, 4], filter: [3, 1, 1], options: d, bias: false },
        ConvCase {
            what: "1x1 stride 2",
            input: [1, 6, 7, 7],
            filter: [4, 1, 1],
            options: conv([0; 4], [2, 2], [1, 1], 1),
            bias: true,
        },
        ConvCase {
            what: "depthwise 3x3",
            input: [2, 6, 9, 7],
            filter: [6, 3, 3],
            options: conv([1, 1, 1, 1], [1, 1], [1, 1], 6),
            bias: true,
        },
        ConvCase {
            what: "depthwise 3x3 stride 2",
            input: [1, 8, 12, 12],
            filter: [8, 3, 3],
            options: conv([0, 1, 0, 1], [2, 2], [1, 1], 8),
            bias: false,
        },
        ConvCase {
            what: "depthwise 5x5 stride 2",
            input: [2, 5, 13, 11],
            filter: [5, 5, 5],
            options: conv([1, 2, 1, 2], [2, 2], [1, 1], 5),
            bias: true,
        },
        ConvCase {
            what: "depthwise 5x5 stride 1",
            input: [1, 4, 10, 21],
            filter: [4, 5, 5],
            options: conv([2, 2, 2, 2], [1, 1], [1, 1], 4),
            bias: true,
        },
        ConvCase {
            what: "depthwise multiplier 2",
            input: [1, 3, 6, 6],
            filter: [6, 3, 3],
            options: conv([1, 1, 1, 1], [1, 1], [1, 1], 3),
            bias: true,
        },
        ConvCase {
            what: "groups 2",
            input: [2, 6, 7, 8],
            filter: [4, 3, 3],
            options: conv([1, 0, 0, 1], [1, 1], [1, 1], 2),
            bias: true,
        },
        ConvCase {
            what: "groups 2 stride 2",
            input: [1, 4, 9, 9],
            filter: [6, 3, 2],
            options: conv([1, 1, 0, 0], [2, 1], [1, 1], 2),
            bias: false,
        },
        ConvCase {
            what: "dilation 2",
            input: [1, 3, 11, 12],
            filter: [4, 3, 3],
            options: conv([2, 2, 2, 2], [1, 1], [2, 2], 1),
            bias: true,
        },
        ConvCase {
            what: "dilation 2 depthwise",
            input: [1, 4, 10, 10],
            filter: [4, 3, 3],
            options: conv([1, 2, 2, 1], [1, 1], [2, 3], 4),
            bias: false,
        },
        // Padding far wider than the input: most padded rows and column
        // phases hold no input.
        ConvCase {
            what: "depthwise 3x3 stride 2, padding far wider than the input",
            input: [1, 2, 5, 6],
            filter: [2, 3, 3],
            options: conv([40, 40, 90, 90], [2, 2], [1, 1], 2),
            bias: true,
        },
        // Strides so large that the padded planes would dwarf input and
        // output: the direct path, which reads the input in place.
        ConvCase {
            what: "depthwise 3x3 stride 20 over wide padding",
            input: [1, 2, 5, 6],
            filter: [2, 3, 3],
            options: conv([40, 40, 90, 90], [20, 20], [1, 1], 2),
            bias: true,
        },
        // Rows wider than one 16-pixel block, with a partial last block.
        ConvCase {
            what: "depthwise 3x3 stride 2, wide rows (TF same)",
            input: [1, 3, 17, 75],
            filter: [3, 3, 3],
            options: conv([0, 1, 0, 1], [2, 2], [1, 1], 3),
            bias: true,
        },
        ConvCase {
            what: "depthwise 3x5 stride (1, 3), dilation (2, 1), uneven pads, wide rows",
            input: [2, 2, 9, 101],
            filter: [2, 3, 5],
            options: conv([1, 3, 2, 0], [1, 3], [2, 1], 2),
            bias: false,
        },
        ConvCase {
            what: "stem 3x3 stride 2, 3 channels",
            input: [1, 3, 32, 32],
            filter: [32, 3, 3],
            options: conv([0, 1, 0, 1], [2, 2], [1, 1], 1),
            bias: true,
        },
    ]
}

#[test]
fn conv2d_matches_the_reference() {
    let mut rng = Lcg::new(90);
    for case in conv_cases() {
        let [_, c, _, _] = case.input;
        let [oc, kh, kw] = case.filter;
        let x = rng.tensor(&case.input, -1.0, 1.0);
        let f = rng.tensor(&[oc, c / case.options.groups, kh, kw], -1.0, 1.0);
        let bias = rng.tensor(&[oc], -1.0, 1.0);
        let want = conv_ref(&Nd::of(&x), &Nd::of(&f), case.bias.then(|| Nd::of(&bias)).as_ref(), &case.options);
        // The filter as a weight constant, and as a graph input.
        for filter_is_weight in [true, false] {
            let mut inputs = vec![("x", &x)];
            if !filter_is_weight {
                inputs.push(("f", &f));
            }
            let got = run1(&inputs, |g, ops| {
                let fo = if filter_is_weight { g.constant("f", f.clone())? } else { ops[1] };
                let bo = if case.bias { Some(g.constant("bias", bias.clone())?) } else { None };
                g.conv2d(ops[0], fo, bo, case.options)
            });
            let what = format!("conv2d {} (filter weight {filter_is_weight})", case.what);
            assert_close(&what, &got, &want, 1e-5, 1e-5);
        }
    }
}

#[test]
fn conv2d_with_a_fused_relu6_or_relu() {
    let mut rng = Lcg::new(91);
    for (groups, c, oc) in [(1, 4, 6), (4, 4, 4), (2, 4, 6)] {
        let o = conv([1, 1, 1, 1], [1, 1], [1, 1], groups);
        let x = rng.tensor(&[1, c, 6, 5], -2.0, 2.0);
        let f = rng.tensor(&[oc, c / groups, 3, 3], -2.0, 2.0);
        let conv_out = conv_ref(&Nd::of(&x), &Nd::of(&f), None, &o);
        let relu6 = unary(&conv_out, |v| v.clamp(0.0, 6.0));
        let (got, instrs) = run_with(&[("x", &x), ("f", &f)], |g, ops| {
            let y = g.conv2d(ops[0], ops[1], None, o)?;
            g.clamp(y, 0.0, 6.0)
        });
        assert_close(&format!("conv2d+relu6 groups {groups}"), &got, &relu6, 1e-5, 1e-5);
        assert_eq!(instrs, 1, "the clamp runs in the conv's epilogue");
        let relu = unary(&conv_out, |v| v.max(0.0));
        let got = run1(&[("x", &x), ("f", &f)], |g, ops| {
            let y = g.conv2d(ops[0], ops[1], None, o)?;
            g.relu(y)
        });
        assert_close(&format!("conv2d+relu groups {groups}"), &got, &relu, 1e-5, 1e-5);
    }
    // A conv whose output is also read elsewhere keeps it: no fusion.
    let x = rng.tensor(&[1, 2, 4, 4], -2.0, 2.0);
    let f = rng.tensor(&[2, 2, 1, 1], -2.0, 2.0);
    let want = conv_ref(&Nd::of(&x), &Nd::of(&f), None, &Conv2dOptions::default());
    let want = binary(&want, &unary(&want, |v| v.clamp(-0.5, 0.5)), |a, b| a + b);
    let got = run1(&[("x", &x), ("f", &f)], |g, ops| {
        let y = g.conv2d(ops[0], ops[1], None, Conv2dOptions::default())?;
        let c = g.clamp(y, -0.5, 0.5)?;
        g.add(y, c)
    });
    assert_close("conv2d read twice", &got, &want, 1e-5, 1e-5);
}

fn pool(window: [usize; 2], padding: [usize; 4], strides: [usize; 2], dilations: [usize; 2]) -> Pool2dOptions {
    Pool2dOptions { window_dimensions: window, padding, strides, dilations }
}

#[test]
fn pools_average_and_max() {
    let mut rng = Lcg::new(92);
    let cases: [(&str, [usize; 4], Pool2dOptions); 7] = [
        ("2x2 stride 2", [1, 3, 8, 8], pool([2, 2], [0; 4], [2, 2], [1, 1])),
        ("3x3 stride 1 pad 1", [2, 2, 5, 7], pool([3, 3], [1, 1, 1, 1], [1, 1], [1, 1])),
        ("3x3 stride 2 asymmetric pad", [1, 4, 9, 10], pool([3, 3], [0, 1, 1, 0], [2, 2], [1, 1])),
        ("3x2 strides 2x1", [1, 2, 7, 6], pool([3, 2], [1, 0, 0, 1], [2, 1], [1, 1])),
        ("dilation 2", [1, 2, 9, 9], pool([3, 3], [2, 2, 2, 2], [1, 1], [2, 2])),
        ("global 7x7", [2, 16, 7, 7], Pool2dOptions::global(7, 7)),
        ("global 5x3", [1, 3, 5, 3], Pool2dOptions::global(5, 3)),
    ];
    for (what, shape, o) in cases {
        let x = rng.tensor(&shape, -3.0, 3.0);
        let avg = run1(&[("x", &x)], |g, ops| g.average_pool2d(ops[0], o));
        assert_close(&format!("averagePool2d {what}"), &avg, &pool_ref(&Nd::of(&x), &o, false), 1e-5, 1e-6);
        let max = run1(&[("x", &x)], |g, ops| g.max_pool2d(ops[0], o));
        assert_close(&format!("maxPool2d {what}"), &max, &pool_ref(&Nd::of(&x), &o, true), 0.0, 0.0);
    }
    // Padding is not counted in the average: a 3x3 window at a corner of an
    // all-ones input with padding 1 averages to exactly 1.
    let ones = Tensor::from_f32([1, 1, 3, 3], &[1.0; 9]).unwrap();
    let avg = run1(&[("x", &ones)], |g, ops| g.average_pool2d(ops[0], pool([3, 3], [1; 4], [1, 1], [1, 1])));
    assert_eq!(avg.as_f32().unwrap(), &[1.0; 9]);
}

#[test]
fn clamp_bounds_values() {
    let mut rng = Lcg::new(93);
    for (lo, hi) in [(0.0f32, 6.0f32), (-1.0, 1.0), (0.5, 0.5), (f32::NEG_INFINITY, 0.0)] {
        let x = rng.tensor(&[3, 50_000], -10.0, 10.0);
        let got = run1(&[("x", &x)], |g, ops| g.clamp(ops[0], lo, hi));
        let want = unary(&Nd::of(&x), |v| v.clamp(lo as f64, hi as f64));
        assert_close(&format!("clamp({lo}, {hi})"), &got, &want, 0.0, 0.0);
    }
}

/// The builder's error for one bad op, as a string.
fn build_error(input: [usize; 4], filter: &[usize], bias: Option<&[usize]>, o: Conv2dOptions) -> String {
    let mut b = GraphBuilder::new();
    let x = b.input("x", F32, input).unwrap();
    let f = b.input("f", F32, filter.to_vec()).unwrap();
    let bias = bias.map(|s| b.input("b", F32, s.to_vec()).unwrap());
    b.conv2d(x, f, bias, o).unwrap_err().to_string()
}

#[test]
fn bad_conv_and_pool_options_are_clear_errors() {
    let d = Conv2dOptions::default();
    let cases: Vec<(String, &str)> = vec![
        (build_error([1, 6, 8, 8], &[4, 3, 3, 3], None, Conv2dOptions { groups: 4, ..d }), "groups 4"),
        (build_error([1, 6, 8, 8], &[4, 3, 3, 3], None, Conv2dOptions { groups: 0, ..d }), "groups 0"),
        (build_error([1, 6, 8, 8], &[5, 3, 3, 3], None, Conv2dOptions { groups: 2, ..d }), "output channels 5"),
        (build_error([1, 6, 8, 8], &[4, 4, 3, 3], None, d), "C/groups = 6"),
        (build_error([1, 6, 8, 8], &[4, 6, 3, 3], None, Conv2dOptions { strides: [0, 1], ..d }), "at least 1"),
        (build_error([1, 6, 8, 8], &[4, 6, 3, 3], None, Conv2dOptions { dilations: [1, 0], ..d }), "at least 1"),
        (build_error([1, 6, 2, 8], &[4, 6, 3, 3], None, d), "output height would be below 1"),
        (build_error([1, 6, 8, 8], &[4, 6, 3, 3], None, Conv2dOptions { dilations: [1, 4], ..d }), "output width"),
        (build_error([1, 6, 8, 8], &[4, 6, 3, 3], Some(&[6]), d), "bias must be float32[4]"),
        (build_error([1, 6, 8, 8], &[4, 6, 3], None, d), "filter must be 4-D"),
    ];
    for (err, words) in &cases {
        assert!(err.contains("conv2d") && err.contains(words), "{err:?} lacks {words:?}");
    }
    let mut b = GraphBuilder::new();
    let x3 = b.input("x3", F32, [6, 8, 8]).unwrap();
    let err = b.conv2d(x3, x3, None, d).unwrap_err().to_string();
    assert!(err.contains("4-D NCHW"), "{err}");
    let x = b.input("x", F32, [1, 2, 4, 4]).unwrap();
    let err = b.max_pool2d(x, pool([5, 1], [0; 4], [1, 1], [1, 1])).unwrap_err().to_string();
    assert!(err.contains("maxPool2d") && err.contains("output height would be below 1"), "{err}");
    let err = b.average_pool2d(x, pool([0, 1], [0; 4], [1, 1], [1, 1])).unwrap_err().to_string();
    assert!(err.contains("averagePool2d") && err.contains("window"), "{err}");
    let err = b.average_pool2d(x, pool([1, 1], [0; 4], [1, 0], [1, 1])).unwrap_err().to_string();
    assert!(err.contains("at least 1"), "{err}");
    let err = b.clamp(x, 2.0, 1.0).unwrap_err().to_string();
    assert!(err.contains("clamp") && err.contains("must not exceed"), "{err}");
    let ids = b.input("ids", DType::Int32, [1, 2, 4, 4]).unwrap();
    assert!(b.max_pool2d(ids, Pool2dOptions::global(4, 4)).is_err());
}

#[test]
fn conv_pool_clamp_graphs_round_trip_through_json() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", F32, [1, 3, 16, 16]).unwrap();
    let f = b.constant("f", Tensor::from_f32([8, 3, 3, 3], &[0.01; 216]).unwrap()).unwrap();
    let bias = b.constant("bias", Tensor::from_f32([8], &[0.1; 8]).unwrap()).unwrap();
    let o = conv([0, 1, 0, 1], [2, 2], [1, 1], 1);
    let y = b.conv2d(x, f, Some(bias), o).unwrap();
    let y = b.clamp(y, 0.0, 6.0).unwrap();
    let dw = b.constant("dw", Tensor::from_f32([8, 1, 3, 3], &[0.1; 72]).unwrap()).unwrap();
    let y = b.conv2d(y, dw, None, conv([1, 1, 1, 1], [1, 1], [2, 2], 8)).unwrap();
    let m = b.max_pool2d(y, pool([2, 2], [0, 1, 0, 1], [2, 2], [1, 1])).unwrap();
    let a = b.average_pool2d(m, Pool2dOptions::global(3, 3)).unwrap();
    let (graph, weights) = b.build(&[("a", a)]).unwrap();
    let json = serde_json::to_value(&graph).unwrap();
    let node = |i: usize| &json["nodes"][i];
    assert_eq!(node(0)["op"], "conv2d");
    assert_eq!(node(0)["padding"], serde_json::json!([0, 1, 0, 1]));
    assert_eq!(node(0)["strides"], serde_json::json!([2, 2]));
    assert_eq!(node(0)["dilations"], serde_json::json!([1, 1]));
    assert_eq!(node(0)["groups"], 1);
    assert_eq!(node(0)["hasBias"], true);
    assert_eq!(node(1)["op"], "clamp");
    assert_eq!(node(1)["minValue"], 0.0);
    assert_eq!(node(1)["maxValue"], 6.0);
    assert_eq!(node(2)["groups"], 8);
    assert_eq!(node(2)["hasBias"], false);
    assert_eq!(node(3)["op"], "maxPool2d");
    assert_eq!(node(3)["windowDimensions"], serde_json::json!([2, 2]));
    assert_eq!(node(4)["op"], "averagePool2d");
    let back: Graph = serde_json::from_value(json).unwrap();
    assert_eq!(back, graph);
    back.validate(Some(&weights)).unwrap();
    assert!(matches!(back.nodes[0].op, Op::Conv2d { has_bias: true, .. }));
}
