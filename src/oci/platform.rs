//! Platforms (`os/arch[/variant]`) as image indexes name them: parsing, normalisation
//! and matching, as containerd does it (arm64 is v8 unless said otherwise; an arm/v7 host also runs v6 and v5).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Platform {
    pub(crate) os: String,
    pub(crate) architecture: String,
    /// Normalised: `v8` for arm64 and `v7` for arm when unspecified.
    pub(crate) variant: String,
}

impl Platform {
    pub(crate) fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, implied) = normalize_arch(&architecture.to_ascii_lowercase());
        let variant = match variant.filter(|v| !v.is_empty()) {
            Some(v) => v.to_ascii_lowercase(),
            None => implied.to_string(),
        };
        let variant = match (architecture.as_str(), variant.as_str()) {
            ("arm64", "8") => "v8".into(),
            ("arm", "") => "v7".into(),
            ("arm", v) if !v.starts_with('v') => format!("v{v}"),
            ("arm64", "") => "v8".into(),
            _ => variant,
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform crimg runs on.
    pub(crate) fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "arm",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch, None)
    }

    /// Whether an image for `candidate` runs here. arm variants run older variants.
    pub(crate) fn runs(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        if self.architecture == "arm" {
            return arm_level(&candidate.variant) <= arm_level(&self.variant);
        }
        self.variant == candidate.variant || candidate.variant.is_empty() || self.variant.is_empty()
    }

    /// How good a match `candidate` is (higher is better); `None` when it does not run here.
    pub(crate) fn score(&self, candidate: &Platform) -> Option<u32> {
        if !self.runs(candidate) {
            return None;
        }
        if self.variant == candidate.variant {
            return Some(100);
        }
        Some(arm_level(&candidate.variant))
    }
}

fn arm_level(variant: &str) -> u32 {
    variant.trim_start_matches('v').parse().unwrap_or(7)
}

/// Architecture aliases and the variant they imply.
fn normalize_arch(arch: &str) -> (String, &'static str) {
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), ""),
        "aarch64" | "arm64" => ("arm64".into(), ""),
        "armhf" => ("arm".into(), "v7"),
        "armel" => ("arm".into(), "v6"),
        "i386" | "386" => ("386".into(), ""),
        other => (other.into(), ""),
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(format!(
                "{s:?} is not a platform like linux/amd64 or linux/arm/v7"
            )),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parsing_and_normalisation() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/armhf", "linux/arm/v7"),
            ("Linux/AMD64", "linux/amd64"),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).to_string(), want, "{input}");
        }
        for bad in ["linux", "", "linux/", "a/b/c/d"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
