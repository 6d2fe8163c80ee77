use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::*;

fn store(dir: &tempfile::TempDir) -> DirectLocal {
    DirectLocal::new(LocalFileSystem::new_with_prefix(dir.path()).expect("a local store"))
}

/// Bytes that differ at every position, so a block written at the wrong offset shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

#[test]
fn only_whole_blocks_are_written_direct() {
    assert_eq!(direct_range(0, 0), 0..0);
    assert_eq!(direct_range(0, 100), 0..0);
    assert_eq!(direct_range(0, BLOCK), 0..BLOCK);
    assert_eq!(direct_range(0, 3 * BLOCK + 5), 0..3 * BLOCK);
    assert_eq!(direct_range(10, 100), 100..100);
    assert_eq!(direct_range(10, BLOCK), BLOCK - 10..BLOCK - 10);
    assert_eq!(direct_range(10, 2 * BLOCK), BLOCK - 10..2 * BLOCK - 10);
    assert_eq!(direct_range(BLOCK as u64, BLOCK + 1), 0..BLOCK);
}

#[tokio::test]
async fn a_put_in_odd_chunks_reads_back_whole_and_leaves_no_staging_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = store(&dir);
    let chunks = [
        pattern(100, 1),
        pattern(3 * BLOCK + 17, 2),
        pattern(BOUNCE + 2 * BLOCK, 3),
        pattern(1, 4),
    ];
    let payload: PutPayload = chunks.iter().map(|c| Bytes::from(c.clone())).collect();
    let location = Path::from("a/b/part-0.parquet");
    let put = store
        .put_opts(&location, payload, PutOptions::default())
        .await
        .expect("put");

    let got = store.get(&location).await.expect("get");
    assert_eq!(put.e_tag, got.meta.e_tag, "the put's e-tag is the file's");
    assert_eq!(got.bytes().await.expect("read"), chunks.concat());
    let listed: Vec<ObjectMeta> = store.list(None).try_collect().await.expect("list");
    assert_eq!(listed.len(), 1);
    let on_disk: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
        .expect("the directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(on_disk, ["part-0.parquet"], "the staging file was renamed");
}

#[tokio::test]
async fn multipart_parts_land_at_their_offsets_whatever_their_alignment() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = store(&dir);
    let location = Path::from("big.parquet");
    let parts = [
        pattern(5 << 20, 1),
        pattern(BLOCK + 3, 2), // the next part starts mid-block
        pattern(2 * BLOCK - 3, 3),
        pattern(5 << 20, 4),
        pattern(777, 5),
    ];
    let mut upload = store
        .put_multipart_opts(&location, PutMultipartOptions::default())
        .await
        .expect("an upload");
    let writes: Vec<_> = parts
        .iter()
        .map(|p| upload.put_part(PutPayload::from(p.clone())))
        .collect();
    // All in flight at once, as `WriteMultipart` runs them.
    futures::future::try_join_all(writes).await.expect("parts");
    let put = upload.complete().await.expect("complete");

    let got = store.get(&location).await.expect("get");
    assert_eq!(put.e_tag, got.meta.e_tag);
    assert_eq!(got.bytes().await.expect("read"), parts.concat());
}

#[tokio::test]
async fn an_aborted_or_dropped_upload_leaves_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = store(&dir);
    let mut upload = store
        .put_multipart_opts(&Path::from("x/aborted"), PutMultipartOptions::default())
        .await
        .expect("an upload");
    upload
        .put_part(PutPayload::from(pattern(BLOCK * 2, 0)))
        .await
        .expect("a part");
    upload.abort().await.expect("abort");
    let dropped = store
        .put_multipart_opts(&Path::from("x/dropped"), PutMultipartOptions::default())
        .await
        .expect("an upload");
    drop(dropped);

    let left: Vec<_> = std::fs::read_dir(dir.path().join("x"))
        .expect("the directory")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn conditional_puts_keep_the_local_stores_semantics() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = store(&dir);
    let location = Path::from("_delta_log/00000000000000000000.json");
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    store
        .put_opts(&location, PutPayload::from("first"), create.clone())
        .await
        .expect("the first create");
    let second = store
        .put_opts(&location, PutPayload::from("second"), create)
        .await;
    assert!(
        matches!(second, Err(object_store::Error::AlreadyExists { .. })),
        "{second:?}"
    );
    let got = store.get(&location).await.expect("get");
    assert_eq!(got.bytes().await.expect("read"), "first");
}

/// On ext4 and xfs (the CI machines' temp dirs are ext4) staging files get a direct handle:
/// otherwise every test above would pass on the buffered fallback alone.
#[test]
fn staging_files_are_opened_direct_on_ext4_and_xfs() {
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    let dir = tempfile::tempdir().expect("a temp dir");
    let staged = Staged::create(&dir.path().join("f")).expect("a staging file");
    let c_path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes())
        .expect("a path without NUL");
    // SAFETY: `statfs` only writes the zeroed struct it is given.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a valid out-pointer.
    assert_eq!(unsafe { libc::statfs(c_path.as_ptr(), &mut fs) }, 0);
    #[allow(clippy::unnecessary_cast)] // `f_type`'s width differs between targets
    let kind = fs.f_type as i64;
    if kind == EXT4 || kind == XFS {
        assert!(staged.direct.is_some(), "no O_DIRECT handle on {kind:#x}");
    }
    staged.discard();
}
