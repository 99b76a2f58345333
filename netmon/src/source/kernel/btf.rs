//! Struct member offsets from the kernel's BTF (/sys/kernel/btf/vmlinux).
//!
//! The kprobe and classic-tracepoint rungs read `struct sock` fields through raw pointers; the
//! offsets differ between kernels, so they are looked up here and handed to the programs as
//! globals. aya parses BTF but keeps member offsets private, so this small reader walks the
//! type section itself (format: Documentation/bpf/btf.rst).
use std::{collections::HashMap, path::Path};

/// The kernel's BTF, or `NETMON_BTF_PATH` (for tests that simulate a kernel without BTF, and
/// for kernels whose BTF ships as a separate file).
pub fn vmlinux_path() -> std::path::PathBuf {
    std::env::var_os("NETMON_BTF_PATH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/sys/kernel/btf/vmlinux".into())
}

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
}

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
struct Type {
    name: u32,
    kind: u32,
    /// `type` for typedef/const/volatile/…: what it refers to.
    refers: u32,
    members: Vec<Member>,
}

pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs: HashMap<String, u32>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_path(&vmlinux_path())
    }

    pub fn from_path(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_bytes = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();
        // Type ids start at 1; id 0 is void.
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            refers: 0,
            members: Vec::new(),
        }];
        let mut off = 0;
        while off < types_bytes.len() {
            let name = u32_at(types_bytes, off)?;
            let info = u32_at(types_bytes, off + 4)?;
            let size_or_type = u32_at(types_bytes, off + 8)?;
            off += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = off + i * 12;
                        let raw = u32_at(types_bytes, m + 8)?;
                        members.push(Member {
                            name: u32_at(types_bytes, m)?,
                            ty: u32_at(types_bytes, m + 4)?,
                            // With kind_flag the top 8 bits hold a bitfield size.
                            bit_offset: if kind_flag { raw & 0x00ff_ffff } else { raw },
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                _ => 0,
            };
            off += extra;
            types.push(Type {
                name,
                kind,
                refers: size_or_type,
                members,
            });
        }
        let mut btf = Btf {
            types,
            strings,
            structs: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && t.name != 0 {
                let name = btf.str_at(t.name).to_string();
                btf.structs.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn str_at(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.refers
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// Bit offset of `name` inside `t`, looking through anonymous structs and unions.
    fn find_member(&self, t: &Type, name: &str) -> Option<(u32, u32)> {
        for m in &t.members {
            if m.name != 0 {
                if self.str_at(m.name) == name {
                    return Some((m.bit_offset, m.ty));
                }
                continue;
            }
            let inner = self.resolve(m.ty)?;
            if matches!(inner.kind, KIND_STRUCT | KIND_UNION)
                && let Some((off, ty)) = self.find_member(inner, name)
            {
                return Some((m.bit_offset + off, ty));
            }
        }
        None
    }

    /// Byte offset of a dotted member path, e.g. `("sock", "__sk_common.skc_family")`.
    pub fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_string()))?;
        let mut t = self
            .resolve(id)
            .ok_or(BtfError::Malformed("dangling type id"))?;
        let mut bits = 0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (off, ty) = self
                .find_member(t, part)
                .ok_or_else(|| BtfError::NoMember {
                    strukt: strukt.to_string(),
                    member: path.to_string(),
                })?;
            bits += off;
            if parts.peek().is_some() {
                t = self
                    .resolve(ty)
                    .ok_or(BtfError::Malformed("dangling type id"))?;
            }
        }
        Ok(bits / 8)
    }
}

/// Offsets the programs need, looked up once at load.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offsets {
    pub sk_family: u32,
    pub sk_cookie: u32,
    pub task_pid: u32,
}

impl Offsets {
    pub fn lookup(btf: &Btf) -> Result<Self, BtfError> {
        let task_pid = btf.member_offset("task_struct", "pid")?;
        // The fork hook reads tgid right after pid; refuse a kernel where that isn't so.
        if btf.member_offset("task_struct", "tgid")? != task_pid + 4 {
            return Err(BtfError::Malformed("task_struct.tgid does not follow pid"));
        }
        Ok(Offsets {
            sk_family: btf.member_offset("sock", "__sk_common.skc_family")?,
            sk_cookie: btf.member_offset("sock", "__sk_common.skc_cookie")?,
            task_pid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_err());
        let mut hdr = vec![0x9f, 0xeb, 1, 0];
        for v in [24u32, 0, 1000, 0, 0] {
            hdr.extend_from_slice(&v.to_le_bytes());
        }
        assert!(Btf::parse(&hdr).is_err());
    }

    /// The running kernel's BTF: skc_family sits right after the addresses and ports
    /// (offset 16 on every 64-bit kernel since 4.x), which is what bpf_sock relies on too.
    #[test]
    fn offsets_from_this_kernel() {
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("skipping: no /sys/kernel/btf/vmlinux");
            return;
        };
        let o = Offsets::lookup(&btf).unwrap();
        assert_eq!(o.sk_family, 16);
        assert!(o.sk_cookie > o.sk_family);
        assert!(o.task_pid > 0);
        assert!(matches!(
            btf.member_offset("sock", "nope"),
            Err(BtfError::NoMember { .. })
        ));
    }
}
