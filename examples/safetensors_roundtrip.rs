//! Reads a safetensors file (e.g. a PyTorch `state_dict` saved with `safetensors.torch.save_file`),
//! prints its layers, and writes it back out through the wire codec and safetensors again.
//!
//! `cargo run -p fl-examples --example safetensors_roundtrip -- IN.safetensors OUT.safetensors`

#![allow(clippy::print_stdout, reason = "an example reports to the terminal")]

use anyhow::{Context, bail};
use fl_core::{DecodeOptions, decode_params, encode_params, load_safetensors, save_safetensors};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: safetensors_roundtrip IN.safetensors OUT.safetensors");
    };
    let params = load_safetensors::<f32>(input).with_context(|| format!("reading {input}"))?;
    for (name, values) in params.layer_slices() {
        let shape = params.layer_by_name(name)?.shape().to_vec();
        println!("{name:<32} {shape:?} ({} values)", values.len());
    }
    let frame = encode_params(&params)?;
    let back = decode_params::<f32>(&frame, &DecodeOptions::default())?;
    println!(
        "{} parameters, {} bytes on the wire, L2 norm {:.6}",
        back.len(),
        frame.len(),
        back.l2_norm()
    );
    save_safetensors(&back, output).with_context(|| format!("writing {output}"))?;
    Ok(())
}
