//! The host buffer cache: freed buffers are reused for the same size, always handed out
//! zero-filled, and never held past the limit. One test, so nothing else in this process
//! touches the cache meanwhile.

use rmlx_core::{buffer_cache, HostBuffer};

#[test]
fn freed_buffers_come_back_zeroed_and_within_the_limit() {
    buffer_cache::set_limit(1 << 20);
    buffer_cache::clear();
    assert_eq!(buffer_cache::cached_bytes(), 0);

    // A freed buffer is kept, and the next one of its size takes it.
    let mut a = HostBuffer::zeroed(1000).unwrap();
    a.bytes_mut().unwrap().fill(0xAB);
    let addr = a.bytes().as_ptr() as usize;
    drop(a);
    assert_eq!(
        buffer_cache::cached_bytes(),
        1024,
        "1000 bytes round up to 16 lines"
    );
    let b = HostBuffer::zeroed(1000).unwrap();
    assert_eq!(
        b.bytes().as_ptr() as usize,
        addr,
        "the freed buffer is reused"
    );
    assert!(
        b.bytes().iter().all(|&x| x == 0),
        "reused memory is zero-filled"
    );
    assert_eq!(buffer_cache::cached_bytes(), 0);
    assert_eq!(b.len(), 1000);

    // Another size does not take it.
    drop(b);
    let c = HostBuffer::zeroed(5000).unwrap();
    assert_eq!(buffer_cache::cached_bytes(), 1024);
    drop(c);
    assert_eq!(buffer_cache::cached_bytes(), 1024 + 5056);

    // Over a quarter of the limit, or past it, buffers go back to the system.
    drop(HostBuffer::zeroed(300 << 10).unwrap());
    assert_eq!(buffer_cache::cached_bytes(), 1024 + 5056);
    let many: Vec<HostBuffer> = (0..8)
        .map(|_| HostBuffer::zeroed(200 << 10).unwrap())
        .collect();
    drop(many);
    assert!(buffer_cache::cached_bytes() <= 1 << 20);

    // Lowering the limit frees what is over it; 0 disables the cache.
    buffer_cache::set_limit(4096);
    assert!(buffer_cache::cached_bytes() <= 4096);
    buffer_cache::set_limit(0);
    assert_eq!(buffer_cache::cached_bytes(), 0);
    drop(HostBuffer::zeroed(64).unwrap());
    assert_eq!(buffer_cache::cached_bytes(), 0);
}
