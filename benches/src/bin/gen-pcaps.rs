//! Writes the synthetic captures into pcaps/ (see pcaps/README.md).
//! `cargo run -p uswitch-benches --bin gen-pcaps`

fn main() -> std::io::Result<()> {
    let dir = uswitch_benches::pcaps_dir();
    for (name, frames) in uswitch_benches::synthetic_pcaps() {
        let path = dir.join(name);
        uswitch_benches::write_pcap(&path, &frames)?;
        println!("wrote {} ({} frames)", path.display(), frames.len());
    }
    Ok(())
}
