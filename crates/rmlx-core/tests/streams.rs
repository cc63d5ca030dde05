//! The stream core: where ops run (default device, GPU inputs), cached transfers, async eval.

use rmlx_core::primitive::BinaryOp;
use rmlx_core::testing::gpus;
use rmlx_core::{async_eval, default_device, with_default_device, Array, Device};

#[test]
fn ops_follow_gpu_inputs_else_the_default_device() {
    // The process default may be a GPU ($RMLX_DEVICE): this test starts from the CPU.
    with_default_device(Device::Cpu, placement_follows_inputs_and_scopes);
}

fn placement_follows_inputs_and_scopes() {
    // Placement needs no GPU: nodes record their device when built, before any eval.
    let x = Array::from_slice(&[1f32, 2.0], &[2]).unwrap();
    assert_eq!(x.device(), Device::Cpu);
    with_default_device(Device::Cuda(3), || {
        assert_eq!(default_device(), Device::Cuda(3));
        let c = Array::from_slice(&[1f32], &[1]).unwrap();
        assert_eq!(
            c.device(),
            Device::Cuda(3),
            "new arrays belong to the default device"
        );
        assert_eq!(
            x.add(&x).unwrap().device(),
            Device::Cuda(3),
            "CPU inputs: default"
        );
        assert_eq!(x.device(), Device::Cpu, "existing arrays keep their device");
    });
    assert_eq!(
        default_device(),
        Device::Cpu,
        "the scope restores the default"
    );
    let g = x.to_device(Device::Cuda(1)).unwrap();
    assert_eq!(g.add(&x).unwrap().device(), Device::Cuda(1));
    assert_eq!(
        x.add(&g).unwrap().device(),
        Device::Cuda(1),
        "any GPU input pulls the op"
    );
}

#[test]
fn device_names_parse() {
    assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
    assert_eq!(Device::parse("cuda").unwrap(), Device::Cuda(0));
    assert_eq!(Device::parse("cuda:2").unwrap(), Device::Cuda(2));
    for bad in ["", "cuda:", "cuda:x", "tpu", "cpu:1"] {
        let e = Device::parse(bad).unwrap_err().to_string();
        assert!(e.contains("device: expected"), "{bad:?}: {e}");
    }
    // `auto` is the first usable CUDA device, else the CPU: never an error.
    let auto = Device::parse("auto").unwrap();
    assert!(auto == Device::Cpu || auto == Device::Cuda(0));
}

#[test]
fn a_missing_gpu_is_a_clear_error() {
    if !gpus().is_empty() {
        return; // this machine has one: nothing to check here
    }
    let e = Device::Cuda(0).check().unwrap_err().to_string();
    assert!(e.contains("cuda"), "{e}");
    let x = Array::from_slice(&[1f32], &[1]).unwrap();
    let y = x.to_device(Device::Cuda(0)).unwrap();
    assert!(
        y.to_vec::<f32>().is_err(),
        "no GPU: evaluating on cuda must fail, not panic"
    );
    assert!(rmlx_core::set_default_device(Device::Cuda(0)).is_err());
}

#[test]
fn a_weight_moves_to_the_gpu_once() {
    for d in gpus() {
        let w = Array::from_slice(&[1f32, 2.0, 3.0], &[3]).unwrap();
        assert!(!w.is_resident_on(d));
        let wg = w.to_device(d).unwrap();
        let y1 = wg.add(&wg).unwrap();
        assert_eq!(y1.to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
        // Used by a GPU op directly (the op follows the GPU input), `w` is uploaded once and
        // the copy stays on `w`'s node.
        let y2 = wg.binary(BinaryOp::Mul, &w).unwrap();
        assert_eq!(y2.to_vec::<f32>().unwrap(), vec![1.0, 4.0, 9.0]);
        assert!(
            w.is_resident_on(d),
            "the device copy is cached on the source"
        );
        // Loaded for a device (default device set), `place` uploads now.
        let p = with_default_device(d, || Array::from_slice(&[5f32], &[1]).unwrap());
        assert!(!p.is_resident_on(d));
        p.place().unwrap();
        assert!(p.is_resident_on(d));
        assert_eq!(p.to_vec::<f32>().unwrap(), vec![5.0]);
    }
}

#[test]
fn async_eval_returns_and_reading_waits() {
    for d in gpus() {
        let x = Array::from_slice(&vec![1.5f32; 1 << 20], &[1 << 20])
            .unwrap()
            .to_device(d)
            .unwrap();
        let mut y = x.clone();
        for _ in 0..50 {
            y = y.add(&x).unwrap();
        }
        let used = async_eval(&[&y]).unwrap();
        assert_eq!(used, vec![d]);
        let v = y.to_vec::<f32>().unwrap();
        assert!(v.iter().all(|&e| e == 1.5 * 51.0));
    }
}

#[test]
fn out_of_gpu_memory_is_an_error_naming_the_device_and_size() {
    for d in gpus() {
        // 100 GB of f32 from a broadcast view of one element: nothing is allocated on the host;
        // the copy's output exceeds any card rmlx runs on.
        let one = Array::from_slice(&[1f32], &[1])
            .unwrap()
            .to_device(d)
            .unwrap();
        let huge = one
            .broadcast_to(&[25_000_000_000])
            .unwrap()
            .contiguous()
            .unwrap();
        let e = huge.eval().unwrap_err().to_string();
        assert!(
            e.contains("out of memory") && e.contains(&d.to_string()),
            "{e}"
        );
        // The device still works afterwards.
        let ok = one.add(&one).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(ok, vec![2.0]);
    }
}

/// Two threads evaluating graphs that share pending nodes: whichever claims a node runs it and
/// the other waits for it, so both get their values (before, the second could find the node
/// mid-run and fail with "input was not evaluated"). On every device.
#[test]
fn threads_that_share_pending_nodes_both_get_their_values() {
    use rmlx_core::primitive::UnaryOp;
    use rmlx_core::testing::{devices, rel_l2, uniform};
    let chain = |x: &Array| {
        let mut y = x.clone();
        for _ in 0..150 {
            y = y.unary(UnaryOp::Tanh).unwrap().add(x).unwrap();
        }
        y
    };
    for d in devices() {
        for round in 0..12u64 {
            let x = uniform(&[64, 33], round, -1.0, 1.0);
            let want = chain(&x);
            let want_a = want.mul(&x).unwrap().to_vec::<f32>().unwrap();
            let want_b = want.sub(&x).unwrap().to_vec::<f32>().unwrap();
            let xd = x.to_device(d).unwrap();
            let shared = chain(&xd);
            let (a, b) = (shared.mul(&xd).unwrap(), shared.sub(&xd).unwrap());
            let (ga, gb) = std::thread::scope(|s| {
                let ha = s.spawn(|| a.to_vec::<f32>());
                let hb = s.spawn(|| b.to_vec::<f32>());
                (ha.join().unwrap(), hb.join().unwrap())
            });
            let (ga, gb) = (ga.unwrap(), gb.unwrap());
            assert!(rel_l2(&ga, &want_a) < 1e-5, "{d} round {round}: a");
            assert!(rel_l2(&gb, &want_b) < 1e-5, "{d} round {round}: b");
        }
    }
}

/// An eval that fails leaves the node failed: reading it again, or a consumer of it, is a
/// clear error naming the first failure (never a hang or "not evaluated").
#[test]
fn a_failed_node_reports_its_error_again() {
    let x = Array::from_slice(&[1f32, 2.0, 3.0], &[3]).unwrap();
    let bad = x
        .take(&Array::from_slice(&[7u32], &[1]).unwrap(), 0)
        .unwrap();
    let first = bad.eval().unwrap_err().to_string();
    let again = bad.to_vec::<f32>().unwrap_err().to_string();
    assert!(
        again.contains("failed earlier") && again.contains(&first),
        "{again}"
    );
    let consumer = bad.add(&x.slice(&[0], &[1], &[1]).unwrap()).unwrap();
    let e = consumer.eval().unwrap_err().to_string();
    assert!(e.contains("failed earlier"), "{e}");
}
