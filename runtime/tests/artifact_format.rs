//! The artifact format: round trips and every kind of corruption.

mod common;

use common::*;
use optc_runtime::artifact::{FORMAT_VERSION, SECTION_WEIGHTS, WEIGHTS_ALIGN};
use optc_runtime::*;
use proptest::prelude::*;

fn err(bytes: &[u8]) -> String {
    match Artifact::from_bytes(bytes) {
        Ok(_) => panic!("corrupt artifact accepted"),
        Err(e) => e.to_string(),
    }
}

/// Offset and length of a section, read from the table.
fn section(bytes: &[u8], kind: u32) -> (usize, usize) {
    let n = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    for i in 0..n {
        let e = 16 + 24 * i;
        if u32::from_le_bytes(bytes[e..e + 4].try_into().unwrap()) == kind {
            let off = u64::from_le_bytes(bytes[e + 4..e + 12].try_into().unwrap());
            let len = u64::from_le_bytes(bytes[e + 12..e + 20].try_into().unwrap());
            return (off as usize, len as usize);
        }
    }
    panic!("no section {kind}")
}

#[test]
fn round_trip_bytes_and_file() {
    let a = add_artifact();
    a.validate().unwrap();
    let bytes = a.to_bytes();
    assert_eq!(&bytes[..8], b"OPTCART\0");
    let (woff, wlen) = section(&bytes, SECTION_WEIGHTS);
    assert_eq!(woff as u64 % WEIGHTS_ALIGN, 0);
    assert_eq!(wlen, a.weights.len());
    let b = Artifact::from_bytes(&bytes).unwrap();
    assert_eq!(a, b);
    assert!(!b.weights.is_mapped());

    let dir = std::env::temp_dir().join(format!("optc-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("add.optc");
    a.write(&path).unwrap();
    let c = Artifact::load(&path).unwrap();
    assert!(c.weights.is_mapped());
    assert_eq!(c.weights.as_ptr() as usize % WEIGHTS_ALIGN as usize, 0);
    assert_eq!(a, c);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_file_names_path_and_section() {
    let a = add_artifact();
    let dir = std::env::temp_dir().join(format!("optc-rt-trunc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.optc");
    let bytes = a.to_bytes();
    let (woff, _) = section(&bytes, SECTION_WEIGHTS);
    std::fs::write(&path, &bytes[..woff + 10]).unwrap();
    let e = Artifact::load(&path).unwrap_err().to_string();
    assert!(e.contains("cut.optc"), "{e}");
    assert!(e.contains("truncated"), "{e}");
    assert!(e.contains("'weights'"), "{e}");
    std::fs::write(&path, &bytes[..10]).unwrap();
    let e = Artifact::load(&path).unwrap_err().to_string();
    assert!(e.contains("cut.optc") && e.contains("'header'"), "{e}");
    std::fs::write(&path, b"").unwrap();
    let e = Artifact::load(&path).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    let e = Artifact::load(dir.join("missing.optc"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.optc"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = add_artifact().to_bytes();
    for n in 0..bytes.len() {
        assert!(
            Artifact::from_bytes(&bytes[..n]).is_err(),
            "accepted at {n}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(err(&longer).contains("after the last section"));
}

#[test]
fn every_byte_flip_is_an_error() {
    let bytes = add_artifact().to_bytes();
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            assert!(
                Artifact::from_bytes(&b).is_err(),
                "flip of bit {mask:#x} at byte {i} accepted"
            );
        }
    }
}

#[test]
fn flips_name_the_corrupt_section() {
    let bytes = add_artifact().to_bytes();
    for (kind, name) in [(1, "'manifest'"), (2, "'sources'"), (3, "'weights'")] {
        let (off, len) = section(&bytes, kind);
        let mut b = bytes.clone();
        b[off + len / 2] ^= 0x10;
        let e = err(&b);
        assert!(e.contains("checksum mismatch") && e.contains(name), "{e}");
        assert!(e.contains("<memory>"), "{e}");
    }
    // A section offset in the table.
    let mut b = bytes.clone();
    b[16 + 4] ^= 0x04;
    let e = err(&b);
    assert!(
        e.contains("checksum mismatch") && e.contains("'header'"),
        "{e}"
    );
}

#[test]
fn magic_and_version() {
    let bytes = add_artifact().to_bytes();
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(err(&b).contains("not an optc artifact"));
    assert!(err(b"PK\x03\x04 a zip file").contains("not an optc artifact"));
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let e = err(&b);
    assert!(
        e.contains("artifact format version 2 is newer than this runtime supports (1)"),
        "{e}"
    );
    let mut b = bytes;
    b[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert!(err(&b).contains("invalid artifact format version 0"));
}

#[test]
fn wrong_target() {
    let mut a = add_artifact();
    a.manifest.target = Target::Sm89;
    let b = Artifact::from_bytes(&a.to_bytes()).unwrap();
    assert_eq!(
        b.check_target(Target::Wgsl).unwrap_err().to_string(),
        "artifact was compiled for sm_89, not wgsl"
    );
    b.check_target(Target::Sm89).unwrap();
}

fn inconsistent(f: impl FnOnce(&mut Artifact)) -> String {
    let mut a = add_artifact();
    f(&mut a);
    let e = err(&a.to_bytes());
    assert!(e.contains("inconsistent manifest"), "{e}");
    assert!(a.validate().is_err());
    e
}

#[test]
fn inconsistent_manifests() {
    let e = inconsistent(|a| a.manifest.launches[0].kernel = 3);
    assert!(e.contains("launch 0 (Add_0 (Add)) uses kernel 3"), "{e}");
    let e = inconsistent(|a| a.manifest.kernels[0].source = 1);
    assert!(e.contains("kernel 0 'add' uses source 1"), "{e}");
    let e = inconsistent(|a| a.manifest.launches[0].bindings[1].offset = 512);
    assert!(
        e.contains("binding 1") && e.contains("weights region"),
        "{e}"
    );
    let e = inconsistent(|a| a.manifest.launches[0].bindings[2].offset = 300);
    assert!(e.contains("not a multiple of 256"), "{e}");
    let e = inconsistent(|a| a.manifest.outputs[0].location.bytes = 12);
    assert!(
        e.contains("output 'c'") && e.contains("needs 16 bytes"),
        "{e}"
    );
    let e = inconsistent(|a| a.manifest.inputs[0].shape = vec![5]);
    assert!(e.contains("input 'a'"), "{e}");
    let e = inconsistent(|a| a.manifest.weights_bytes = 4);
    assert!(e.contains("weights section holds 272 bytes"), "{e}");
    let e = inconsistent(|a| a.manifest.arena_bytes = 100);
    assert!(e.contains("arena region (100 bytes)"), "{e}");
    let e = inconsistent(|a| a.manifest.inputs[0].location.region = Region::Weights);
    assert!(e.contains("input 'a'"), "{e}");
    let e = inconsistent(|a| a.manifest.inputs[0].dtype = HostType::I64);
    assert!(e.contains("cannot be stored as f32"), "{e}");
    let e = inconsistent(|a| a.manifest.launches[0].bindings[0].bytes = 6);
    assert!(e.contains("multiple of 4"), "{e}");
    let e = inconsistent(|a| a.manifest.outputs[0].shape = vec![u64::MAX, 4]);
    assert!(e.contains("output 'c'"), "{e}");
    let e = inconsistent(|a| {
        let l = a.manifest.launches[0].clone();
        let mut l2 = l.clone();
        l2.bindings.pop();
        a.manifest.launches = vec![l, l2];
    });
    assert!(e.contains("another launch of the same kernel"), "{e}");
}

#[test]
fn malformed_sources_and_manifest_json() {
    // Hand-patch a section and fix its checksum to reach the decoders.
    fn patch(kind: u32, f: impl FnOnce(&mut Vec<u8>)) -> String {
        let a = add_artifact();
        let bytes = a.to_bytes();
        let (off, len) = section(&bytes, kind);
        let mut body = bytes[off..off + len].to_vec();
        f(&mut body);
        assert_eq!(body.len(), len, "keep the length");
        let mut b = bytes.clone();
        b[off..off + len].copy_from_slice(&body);
        let n = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
        for i in 0..n {
            let e = 16 + 24 * i;
            if u32::from_le_bytes(b[e..e + 4].try_into().unwrap()) == kind {
                b[e + 20..e + 24].copy_from_slice(&crc32(&body).to_le_bytes());
            }
        }
        let t = 16 + 24 * n;
        let h = crc32(&b[..t]);
        b[t..t + 4].copy_from_slice(&h.to_le_bytes());
        err(&b)
    }
    let e = patch(1, |m| m[0] = b'[');
    assert!(e.contains("malformed manifest"), "{e}");
    let e = patch(2, |s| s[0] = 9);
    assert!(e.contains("malformed sources"), "{e}");
    let e = patch(2, |s| {
        let n = s.len();
        s[n - 3] = 0xFF;
    });
    assert!(e.contains("not UTF-8"), "{e}");
}

fn crc32(b: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), independent of the implementation under test.
    let mut c = !0u32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Artifact::from_bytes(&b);
        let mut with_magic = b"OPTCART\0\x01\0\0\0".to_vec();
        with_magic.extend(&b);
        let _ = Artifact::from_bytes(&with_magic);
    }

    #[test]
    fn random_edits_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut b = add_artifact().to_bytes();
        for (at, v) in edits {
            let n = b.len();
            b[at % n] = v;
        }
        let _ = Artifact::from_bytes(&b);
    }
}
