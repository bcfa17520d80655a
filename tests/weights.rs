//! The bundled weights are the published ImageNet VGG16 values, with the right shapes, and the
//! loader reverses conv1_1's input channels from Caffe's BGR to our RGB.

mod common;

use candle_core::{safetensors, Device};
use stylize_video::net::vgg::{weights_path, LayerName, Pooling, Vgg16, VGG16_BLOCKS};

const PUBLISHED_BIAS0: [f32; 13] = [
    0.73429835, -0.30912212, -0.04577766, -0.06418542, -0.074358866, 0.019675018, 0.035415243, 0.013485669,
    0.023680462, 0.03757768, 0.09722325, 0.21327873, 0.18837857,
];

#[test]
fn the_file_holds_the_published_values_and_shapes() {
    let tensors = safetensors::load(weights_path(None), &Device::Cpu).unwrap();
    assert_eq!(tensors.len(), 26);
    let w = tensors["conv1_1.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // OIHW, BGR input order: weight[0,0,0,0] and weight[0,2,0,0].
    assert_eq!(w[0], 0.42947057);
    assert_eq!(w[2 * 9], 0.4800154);
    let mut c_in = 3;
    for (i, layer) in LayerName::all().iter().enumerate() {
        let name = format!("conv{}_{}", layer.block, layer.conv);
        let c_out = VGG16_BLOCKS[layer.block - 1].1;
        assert_eq!(tensors[&format!("{name}.weight")].dims(), &[c_out, c_in, 3, 3], "{name}");
        let bias = tensors[&format!("{name}.bias")].to_vec1::<f32>().unwrap();
        assert_eq!(bias.len(), c_out, "{name}");
        assert_eq!(bias[0], PUBLISHED_BIAS0[i], "{name} bias[0]");
        c_in = c_out;
    }
}

#[test]
fn the_loader_turns_conv1_1_to_rgb_input_order() {
    let vgg = Vgg16::load(&weights_path(None), Pooling::Max).unwrap();
    let conv1_1 = vgg.conv_weights("relu1_1".parse().unwrap());
    assert_eq!((conv1_1.c_out, conv1_1.c_in), (64, 3));
    // RGB order: the file's channel 2 (R) comes first, its channel 0 (B) last.
    assert_eq!(conv1_1.weight[0], 0.4800154);
    assert_eq!(conv1_1.weight[2 * 9], 0.42947057);
    assert_eq!(conv1_1.bias.as_ref().unwrap()[0], PUBLISHED_BIAS0[0]);
    let conv5_3 = vgg.conv_weights("relu5_3".parse().unwrap());
    assert_eq!((conv5_3.c_out, conv5_3.c_in, conv5_3.weight.len()), (512, 512, 512 * 512 * 9));
}

#[test]
fn a_missing_or_broken_weights_file_is_a_clear_error() {
    let dir = common::scratch_dir("weights-errors");
    let missing = dir.join("none.safetensors");
    let err = Vgg16::load(&missing, Pooling::Max).err().unwrap().to_string();
    assert!(err.contains("none.safetensors") && err.contains("not found"), "{err}");
    let broken = dir.join("broken.safetensors");
    std::fs::write(&broken, b"definitely not safetensors").unwrap();
    let err = Vgg16::load(&broken, Pooling::Max).err().unwrap().to_string();
    assert!(err.starts_with("weights ") && err.contains("broken.safetensors"), "{err}");
}

#[test]
fn layer_names_parse_and_reject() {
    let l: LayerName = "relu4_2".parse().unwrap();
    assert_eq!((l.block, l.conv, l.depth(), l.channels()), (4, 2, 8, 512));
    assert_eq!(l.to_string(), "relu4_2");
    assert_eq!(LayerName::all().len(), 13);
    for bad in ["relu6_1", "relu1_3", "conv1_1", "relu0_1", "relu", "relu1_x"] {
        let err = bad.parse::<LayerName>().unwrap_err();
        assert!(err.contains(bad) && err.contains("relu5_3"), "{err}");
    }
}
