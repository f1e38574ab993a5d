//! The artifact file format, version 1: one file holding the manifest, the kernel sources and
//! the weights, every part checksummed.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `OPTCART\0` |
//! | 4 | format version (1) |
//! | 4 | section count `n` (1..=64) |
//! | 24 × n | section table: kind u32, offset u64, length u64, CRC-32 u32 |
//! | 4 | CRC-32 of everything above |
//! | … | the sections, in any order, separated only by zero bytes |
//!
//! Section kinds: 1 = manifest (JSON of [`Manifest`]), 2 = sources (u32 count, then for each
//! source a u64 byte length and its UTF-8 text), 3 = weights (raw bytes, at a file offset that is
//! a multiple of 256 so the section can be memory-mapped and uploaded or bound directly). Unknown
//! kinds are checked and ignored. Every byte of the file is covered by a checksum or must be a
//! zero padding byte, and the file ends where its last section ends, so any corruption is found.

use crate::manifest::{Manifest, Target};
use memmap2::Mmap;
use std::fmt;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The first eight bytes of every artifact.
pub const MAGIC: [u8; 8] = *b"OPTCART\0";
/// The artifact format version this runtime reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Alignment of the weights section in the file.
pub const WEIGHTS_ALIGN: u64 = 256;
/// Section kind of the manifest.
pub const SECTION_MANIFEST: u32 = 1;
/// Section kind of the kernel sources.
pub const SECTION_SOURCES: u32 = 2;
/// Section kind of the weights.
pub const SECTION_WEIGHTS: u32 = 3;

const MAX_SECTIONS: u32 = 64;
const ENTRY_BYTES: usize = 24;
const FIXED_HEADER: usize = 16;

/// Where an artifact came from, for error messages.
const MEMORY: &str = "<memory>";

/// Why an artifact could not be read, written or used. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum ArtifactError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the artifact magic.
    #[error("{}: not an optc artifact (bad magic bytes)", path.display())]
    BadMagic { path: PathBuf },
    /// The file was written by a newer optc.
    #[error(
        "{}: artifact format version {version} is newer than this runtime supports ({FORMAT_VERSION})",
        path.display()
    )]
    NewerVersion { path: PathBuf, version: u32 },
    /// The format version is not one any optc writes.
    #[error("{}: invalid artifact format version {version}", path.display())]
    BadVersion { path: PathBuf, version: u32 },
    /// The file ends before a section (or the header) does.
    #[error(
        "{}: truncated file: section '{section}' needs {need} bytes but the file has {len}",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        section: String,
        need: u64,
        len: u64,
    },
    /// A section's contents do not match its checksum.
    #[error(
        "{}: checksum mismatch in section '{section}' (stored {stored:08x}, computed {computed:08x}): the file is corrupt",
        path.display()
    )]
    Checksum {
        path: PathBuf,
        section: String,
        stored: u32,
        computed: u32,
    },
    /// A required section is absent.
    #[error("{}: missing section '{section}'", path.display())]
    MissingSection { path: PathBuf, section: String },
    /// A section's contents or the file layout cannot be decoded.
    #[error("{}: malformed {section}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        section: String,
        message: String,
    },
    /// The manifest contradicts itself or the other sections.
    #[error("{}: inconsistent manifest: {message}", path.display())]
    Inconsistent { path: PathBuf, message: String },
    /// The artifact targets another device family.
    #[error("artifact was compiled for {found}, not {expected}")]
    WrongTarget { found: Target, expected: Target },
}

/// The weights section: owned bytes or a memory-mapped part of the artifact file.
#[derive(Clone)]
pub struct Weights(WeightsRepr);

#[derive(Clone)]
enum WeightsRepr {
    Owned(Vec<u8>),
    Mapped { map: Arc<Mmap>, range: Range<usize> },
}

impl Weights {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            WeightsRepr::Owned(v) => v,
            WeightsRepr::Mapped { map, range } => &map[range.clone()],
        }
    }

    /// True when the bytes are memory-mapped from the artifact file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, WeightsRepr::Mapped { .. })
    }
}

impl Deref for Weights {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<Vec<u8>> for Weights {
    fn from(v: Vec<u8>) -> Weights {
        Weights(WeightsRepr::Owned(v))
    }
}

impl Default for Weights {
    fn default() -> Weights {
        Weights::from(Vec::new())
    }
}

impl PartialEq for Weights {
    fn eq(&self, other: &Weights) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Weights({} bytes{})",
            self.len(),
            if self.is_mapped() { ", mapped" } else { "" }
        )
    }
}

/// A compiled model: manifest, kernel sources and weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    /// What to run and where every tensor lives.
    pub manifest: Manifest,
    /// Kernel source texts (WGSL or PTX), indexed by [`crate::KernelInfo::source`].
    pub sources: Vec<String>,
    /// The weights region's initial contents.
    pub weights: Weights,
}

fn section_name(kind: u32) -> String {
    match kind {
        SECTION_MANIFEST => "manifest".into(),
        SECTION_SOURCES => "sources".into(),
        SECTION_WEIGHTS => "weights".into(),
        k => format!("kind {k}"),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

struct Parsed {
    manifest: Manifest,
    sources: Vec<String>,
    weights: Range<usize>,
}

impl Artifact {
    /// An artifact from its parts (not validated; see [`Artifact::validate`]).
    pub fn new(manifest: Manifest, sources: Vec<String>, weights: impl Into<Weights>) -> Artifact {
        Artifact {
            manifest,
            sources,
            weights: weights.into(),
        }
    }

    /// Checks the manifest against itself and the other sections (what loading checks).
    pub fn validate(&self) -> Result<(), ArtifactError> {
        self.validate_at(Path::new(MEMORY))
    }

    fn validate_at(&self, path: &Path) -> Result<(), ArtifactError> {
        self.manifest
            .check(self.sources.len(), self.weights.len() as u64)
            .map_err(|message| ArtifactError::Inconsistent {
                path: path.to_path_buf(),
                message,
            })
    }

    /// Errors unless the artifact was compiled for `expected`.
    pub fn check_target(&self, expected: Target) -> Result<(), ArtifactError> {
        if self.manifest.target == expected {
            Ok(())
        } else {
            Err(ArtifactError::WrongTarget {
                found: self.manifest.target,
                expected,
            })
        }
    }

    /// The artifact as file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifest = serde_json::to_vec(&self.manifest).expect("a manifest always serialises");
        let mut sources = Vec::new();
        sources.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        for s in &self.sources {
            sources.extend_from_slice(&(s.len() as u64).to_le_bytes());
            sources.extend_from_slice(s.as_bytes());
        }
        let weights = self.weights.as_bytes();
        let parts: [(u32, &[u8]); 3] = [
            (SECTION_MANIFEST, &manifest),
            (SECTION_SOURCES, &sources),
            (SECTION_WEIGHTS, weights),
        ];
        let header_len = (FIXED_HEADER + ENTRY_BYTES * parts.len() + 4) as u64;
        let mut offsets = Vec::new();
        let mut at = header_len;
        for (kind, data) in &parts {
            let align = if *kind == SECTION_WEIGHTS {
                WEIGHTS_ALIGN
            } else {
                8
            };
            at = align_up(at, align);
            offsets.push(at);
            at += data.len() as u64;
        }
        let mut out = Vec::with_capacity(at as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
        for ((kind, data), offset) in parts.iter().zip(&offsets) {
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        for ((_, data), offset) in parts.iter().zip(&offsets) {
            out.resize(*offset as usize, 0);
            out.extend_from_slice(data);
        }
        out
    }

    /// Writes the artifact to `path` (through a temporary file renamed into place).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), ArtifactError> {
        let path = path.as_ref();
        let io = |source| ArtifactError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, self.to_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Parses and validates artifact bytes; the weights are copied.
    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        let p = parse(Path::new(MEMORY), bytes)?;
        Ok(Artifact {
            manifest: p.manifest,
            sources: p.sources,
            weights: Weights::from(bytes[p.weights].to_vec()),
        })
    }

    /// Loads and validates an artifact file; the weights stay memory-mapped.
    pub fn load(path: impl AsRef<Path>) -> Result<Artifact, ArtifactError> {
        let path = path.as_ref();
        let io = |source| ArtifactError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(ArtifactError::Truncated {
                path: path.to_path_buf(),
                section: "header".into(),
                need: (FIXED_HEADER + 4) as u64,
                len: 0,
            });
        }
        // SAFETY: the map is read-only; like every memory-mapped file reader we rely on the file
        // not being truncated or rewritten by another process while it is mapped.
        let map = match unsafe { Mmap::map(&file) } {
            Ok(map) => map,
            Err(_) => {
                let bytes = std::fs::read(path).map_err(io)?;
                let p = parse(path, &bytes)?;
                return Ok(Artifact {
                    manifest: p.manifest,
                    sources: p.sources,
                    weights: Weights::from(bytes[p.weights].to_vec()),
                });
            }
        };
        let p = parse(path, &map)?;
        Ok(Artifact {
            manifest: p.manifest,
            sources: p.sources,
            weights: Weights(WeightsRepr::Mapped {
                map: Arc::new(map),
                range: p.weights,
            }),
        })
    }
}

fn parse(path: &Path, b: &[u8]) -> Result<Parsed, ArtifactError> {
    let path_buf = || path.to_path_buf();
    let len = b.len() as u64;
    let n = b.len().min(MAGIC.len());
    if b[..n] != MAGIC[..n] {
        return Err(ArtifactError::BadMagic { path: path_buf() });
    }
    let truncated = |section: &str, need: u64| ArtifactError::Truncated {
        path: path_buf(),
        section: section.into(),
        need,
        len,
    };
    let malformed = |section: &str, message: String| ArtifactError::Malformed {
        path: path_buf(),
        section: section.into(),
        message,
    };
    if b.len() < FIXED_HEADER {
        return Err(truncated("header", (FIXED_HEADER + 4) as u64));
    }
    let version = u32_at(b, 8);
    if version > FORMAT_VERSION {
        return Err(ArtifactError::NewerVersion {
            path: path_buf(),
            version,
        });
    }
    if version == 0 {
        return Err(ArtifactError::BadVersion {
            path: path_buf(),
            version,
        });
    }
    let count = u32_at(b, 12);
    if count == 0 || count > MAX_SECTIONS {
        return Err(malformed(
            "header",
            format!("section count {count} (expected 1..={MAX_SECTIONS})"),
        ));
    }
    let table_end = FIXED_HEADER + ENTRY_BYTES * count as usize;
    let header_end = table_end + 4;
    if b.len() < header_end {
        return Err(truncated("header", header_end as u64));
    }
    let stored = u32_at(b, table_end);
    let computed = crc32fast::hash(&b[..table_end]);
    if stored != computed {
        return Err(ArtifactError::Checksum {
            path: path_buf(),
            section: "header".into(),
            stored,
            computed,
        });
    }
    // (kind, range)
    let mut sections: Vec<(u32, Range<usize>)> = Vec::new();
    for i in 0..count as usize {
        let e = FIXED_HEADER + i * ENTRY_BYTES;
        let kind = u32_at(b, e);
        let offset = u64_at(b, e + 4);
        let length = u64_at(b, e + 12);
        let crc = u32_at(b, e + 20);
        let name = section_name(kind);
        let end = offset.saturating_add(length);
        if end > len {
            return Err(truncated(&name, end));
        }
        if offset < header_end as u64 {
            return Err(malformed(
                &name,
                format!("section at offset {offset} overlaps the header"),
            ));
        }
        let range = offset as usize..end as usize;
        let computed = crc32fast::hash(&b[range.clone()]);
        if computed != crc {
            return Err(ArtifactError::Checksum {
                path: path_buf(),
                section: name,
                stored: crc,
                computed,
            });
        }
        if matches!(kind, SECTION_MANIFEST | SECTION_SOURCES | SECTION_WEIGHTS)
            && sections.iter().any(|(k, _)| *k == kind)
        {
            return Err(malformed(&name, "the section appears twice".into()));
        }
        sections.push((kind, range));
    }
    // Every byte outside the header and the sections must be zero padding, and nothing may
    // follow the last section.
    let mut by_offset: Vec<&(u32, Range<usize>)> = sections.iter().collect();
    by_offset.sort_by_key(|(_, r)| (r.start, r.end));
    let mut at = header_end;
    for (kind, r) in by_offset {
        if r.start < at {
            return Err(malformed(
                &section_name(*kind),
                format!("section at offset {} overlaps another section", r.start),
            ));
        }
        if b[at..r.start].iter().any(|&x| x != 0) {
            return Err(malformed(
                "layout",
                format!(
                    "non-zero padding bytes between offsets {at} and {}",
                    r.start
                ),
            ));
        }
        at = r.end;
    }
    if at != b.len() {
        return Err(malformed(
            "layout",
            format!("{} unexpected bytes after the last section", b.len() - at),
        ));
    }
    let find = |kind: u32| {
        sections
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| ArtifactError::MissingSection {
                path: path_buf(),
                section: section_name(kind),
            })
    };
    let manifest_range = find(SECTION_MANIFEST)?;
    let sources_range = find(SECTION_SOURCES)?;
    let weights = find(SECTION_WEIGHTS)?;
    if weights.start as u64 % WEIGHTS_ALIGN != 0 {
        return Err(malformed(
            "weights",
            format!(
                "section offset {} is not a multiple of {WEIGHTS_ALIGN}",
                weights.start
            ),
        ));
    }
    let manifest: Manifest = serde_json::from_slice(&b[manifest_range])
        .map_err(|e| malformed("manifest", e.to_string()))?;
    let sources =
        decode_sources(&b[sources_range]).map_err(|message| malformed("sources", message))?;
    manifest
        .check(sources.len(), weights.len() as u64)
        .map_err(|message| ArtifactError::Inconsistent {
            path: path_buf(),
            message,
        })?;
    Ok(Parsed {
        manifest,
        sources,
        weights,
    })
}

fn decode_sources(b: &[u8]) -> Result<Vec<String>, String> {
    if b.len() < 4 {
        return Err("shorter than its 4-byte count".into());
    }
    let count = u32_at(b, 0) as usize;
    if count > (b.len() - 4) / 8 {
        return Err(format!("count {count} does not fit in {} bytes", b.len()));
    }
    let mut at = 4usize;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        if b.len() - at < 8 {
            return Err(format!("source {i}: length field runs past the section"));
        }
        let n = u64_at(b, at);
        at += 8;
        if n > (b.len() - at) as u64 {
            return Err(format!("source {i}: {n} bytes run past the section"));
        }
        let text = std::str::from_utf8(&b[at..at + n as usize])
            .map_err(|e| format!("source {i} is not UTF-8: {e}"))?;
        out.push(text.to_string());
        at += n as usize;
    }
    if at != b.len() {
        return Err(format!("{} trailing bytes", b.len() - at));
    }
    Ok(out)
}
