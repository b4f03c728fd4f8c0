use super::*;

#[test]
fn control_block_fits_in_256_bytes() {
    let size = std::mem::size_of::<Tcb>();
    println!("size_of::<Tcb>() = {size}");
    assert!(size <= 256, "Tcb is {size} bytes");
}
