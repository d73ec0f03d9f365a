//! This boot's id: what changes when the machine restarts, as after a power loss.

use std::sync::OnceLock;

/// The kernel's id of this boot (Linux: `/proc/sys/kernel/random/boot_id`); `None` where there is
/// none. Files of a state directory written in this boot are whole in the page cache even if a
/// dagrun was killed; those written in another may have been cut short by a power loss.
pub(crate) fn boot_id() -> Option<&'static str> {
    static ID: OnceLock<Option<String>> = OnceLock::new();
    ID.get_or_init(read).as_deref()
}

#[cfg(target_os = "linux")]
fn read() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    // Used in file names and in one-line headers.
    let plain = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plain.then(|| id.to_owned())
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<String> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn this_boot_has_one_id() {
        let id = super::boot_id().expect("Linux has a boot id");
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert_eq!(super::boot_id(), Some(id));
    }
}
