//! Local roots: [`LocalFileSystem`], with the bytes of new objects written around the page
//! cache (`O_DIRECT`).
//!
//! A table's files are written once and read by other processes later; passing them through
//! the page cache costs a copy into pages the kernel must first allocate, and on virtual
//! machines whose free memory the host reclaims (this project's CI and benchmark machines) a
//! page the guest has not touched lately costs ~30 µs to fault in: 105 MB of new page-cache
//! pages took 0.8 CPU-s there, and 0.01 s written direct (benches/README.md). So a put or a
//! multipart upload writes each part's whole 4 KiB blocks straight to the disk from an aligned
//! bounce buffer, and only the partial blocks at a part's edges through the page cache.
//!
//! Everything else (reads, listings, renames, copies, deletes, conditional puts and puts with
//! attributes) is `LocalFileSystem`'s own. New objects keep its protocol: the bytes go to a
//! staging file `{path}#{n}` (which its listings hide) that is renamed over the object once
//! complete, so no reader ever sees part of one.
//!
//! Invariant: a direct write and a buffered one never share a 4 KiB block of a file (the page
//! cache and the disk stay coherent), and a file system that refuses `O_DIRECT` (tmpfs, some
//! FUSE mounts) gets plain buffered writes, never an error.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

/// The block a direct write covers: a page, which is at least every disk's logical block.
const BLOCK: usize = 4096;

/// Bytes copied into the aligned bounce buffer per direct write.
const BOUNCE: usize = 1 << 20;

/// [`LocalFileSystem`] writing new objects around the page cache.
#[derive(Debug)]
pub struct DirectLocal {
    inner: LocalFileSystem,
}

impl DirectLocal {
    pub fn new(inner: LocalFileSystem) -> DirectLocal {
        DirectLocal { inner }
    }
}

impl std::fmt::Display for DirectLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for DirectLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Overwrite) || !opts.attributes.is_empty() {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let dest = self.inner.path_to_filesystem(location)?;
        blocking(move || {
            let staged = Staged::create(&dest)?;
            let mut offset = 0;
            for chunk in payload.iter() {
                if let Err(e) = staged.write_at(offset, chunk) {
                    staged.discard();
                    return Err(e);
                }
                offset += chunk.len() as u64;
            }
            staged.complete(&dest)
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        if !opts.attributes.is_empty() {
            return self.inner.put_multipart_opts(location, opts).await;
        }
        let dest = self.inner.path_to_filesystem(location)?;
        let staged = {
            let dest = dest.clone();
            blocking(move || Staged::create(&dest)).await?
        };
        Ok(Box::new(DirectUpload {
            staged: Some(Arc::new(staged)),
            dest,
            offset: 0,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload into a staging file; parts land at their offsets in any order.
#[derive(Debug)]
struct DirectUpload {
    /// `None` once completed or aborted.
    staged: Option<Arc<Staged>>,
    dest: PathBuf,
    /// Where the next part starts.
    offset: u64,
}

#[async_trait]
impl MultipartUpload for DirectUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let offset = self.offset;
        self.offset += data.content_length() as u64;
        let Some(staged) = self.staged.clone() else {
            return futures::future::ready(Err(finished())).boxed();
        };
        blocking(move || {
            let mut at = offset;
            for chunk in data.iter() {
                staged.write_at(at, chunk)?;
                at += chunk.len() as u64;
            }
            Ok(())
        })
        .boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let staged = self.staged.take().ok_or_else(finished)?;
        let dest = self.dest.clone();
        // The parts' tasks hold the other references until they have written.
        blocking(move || match Arc::try_unwrap(staged) {
            Ok(staged) => staged.complete(&dest),
            Err(staged) => {
                staged.discard();
                Err(generic(io::Error::other(
                    "completed a multipart upload while parts were still being written",
                )))
            }
        })
        .await
    }

    async fn abort(&mut self) -> Result<()> {
        let staged = self.staged.take().ok_or_else(finished)?;
        blocking(move || {
            staged.discard();
            Ok(())
        })
        .await
    }
}

impl Drop for DirectUpload {
    fn drop(&mut self) {
        if let Some(staged) = self.staged.take() {
            staged.discard();
        }
    }
}

/// A staging file `{dest}#{n}`, open twice: buffered, and direct where the file system
/// allows it.
#[derive(Debug)]
struct Staged {
    path: PathBuf,
    buffered: File,
    direct: Option<File>,
}

impl Staged {
    /// Creates the next free staging file of `dest` (and `dest`'s directories).
    fn create(dest: &std::path::Path) -> Result<Staged> {
        let mut n = 1u32;
        loop {
            let mut path = dest.as_os_str().to_owned();
            path.push(format!("#{n}"));
            let path = PathBuf::from(path);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(buffered) => {
                    let direct = OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_DIRECT)
                        .open(&path)
                        .ok();
                    return Ok(Staged {
                        path,
                        buffered,
                        direct,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let Some(dir) = dest.parent() else {
                        return Err(generic(e));
                    };
                    std::fs::create_dir_all(dir).map_err(generic)?;
                }
                Err(e) => return Err(generic(e)),
            }
        }
    }

    /// Writes `data` at `offset`: its whole blocks direct, its partial ones buffered.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let direct = direct_range(offset, data.len());
        self.buffered
            .write_all_at(&data[..direct.start], offset)
            .map_err(generic)?;
        self.write_direct(offset + direct.start as u64, &data[direct.clone()])?;
        self.buffered
            .write_all_at(&data[direct.end..], offset + direct.end as u64)
            .map_err(generic)
    }

    /// Writes whole blocks at a block-aligned `offset`, direct through an aligned bounce
    /// buffer; buffered if the file system refuses.
    fn write_direct(&self, offset: u64, data: &[u8]) -> Result<()> {
        let Some(direct) = &self.direct else {
            return self.buffered.write_all_at(data, offset).map_err(generic);
        };
        BOUNCE_BUFFER.with_borrow_mut(|bounce| {
            let aligned = aligned(bounce);
            let mut at = offset;
            for piece in data.chunks(BOUNCE) {
                let buf = &mut aligned[..piece.len()];
                buf.copy_from_slice(piece);
                match direct.write_all_at(buf, at) {
                    Ok(()) => {}
                    // A block size above `BLOCK`, say: this piece goes through the cache.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        self.buffered.write_all_at(piece, at).map_err(generic)?;
                    }
                    Err(e) => return Err(generic(e)),
                }
                at += piece.len() as u64;
            }
            Ok(())
        })
    }

    /// Renames the staging file over `dest`.
    fn complete(self, dest: &std::path::Path) -> Result<PutResult> {
        let meta = self.buffered.metadata().map_err(generic)?;
        drop((self.buffered, self.direct));
        if let Err(e) = std::fs::rename(&self.path, dest) {
            let _ = std::fs::remove_file(&self.path);
            return Err(generic(e));
        }
        Ok(PutResult {
            e_tag: Some(e_tag(&meta)),
            version: None,
        })
    }

    /// Removes the staging file (best effort: a leftover is hidden from listings).
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The part of `len` bytes at `offset` that covers whole blocks.
fn direct_range(offset: u64, len: usize) -> Range<usize> {
    let into_block = (offset % BLOCK as u64) as usize;
    let start = ((BLOCK - into_block) % BLOCK).min(len);
    let end = start + (len - start) / BLOCK * BLOCK;
    start..end
}

thread_local! {
    /// One bounce buffer per blocking thread, with room to align it.
    static BOUNCE_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The [`BOUNCE`] bytes of `buf` that start at a block boundary (growing it once).
fn aligned(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.len() < BOUNCE + BLOCK {
        buf.resize(BOUNCE + BLOCK, 0);
    }
    let skip = buf.as_ptr().align_offset(BLOCK);
    &mut buf[skip..skip + BOUNCE]
}

/// `LocalFileSystem`'s e-tag of a file (inode, modification time, size), so that a later
/// `head` agrees with the put's result.
fn e_tag(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("{:x}-{:x}-{:x}", meta.ino(), mtime, meta.len())
}

/// The error of an upload used after it was completed or aborted.
fn finished() -> object_store::Error {
    generic(io::Error::other(
        "the upload was already completed or aborted",
    ))
}

fn generic(e: io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    }
}

/// Runs `f` on tokio's blocking pool (or in place outside a runtime, as `LocalFileSystem`
/// does).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => rt
            .spawn_blocking(f)
            .await
            .map_err(|e| generic(io::Error::other(e)))?,
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests;
