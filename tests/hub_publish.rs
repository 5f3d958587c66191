//! Publishing against a loopback server that implements the Hub's documented write
//! endpoints (create, preupload, LFS batch/upload/verify, NDJSON commit): what it received
//! rebuilds the files byte for byte, every API call carries the token, LFS objects are
//! checked by SHA-256, and an object the server already has is not sent again.

use sv_hub::publish::{PublishError, Publisher, Upload};
use sv_tests::hub_writer::fake_hub;

#[test]
fn a_folder_is_committed_with_lfs_for_weights_and_read_back_byte_for_byte() {
    let (base, store) = fake_hub();
    let weights: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let card = br#"{"model_type": "convnextv2"}"#.to_vec();
    // The weights are sent from a file, streamed; the rest from memory.
    let dir = tempfile::tempdir().unwrap();
    let weights_file = dir.path().join("weights.bin");
    std::fs::write(&weights_file, &weights).unwrap();
    let contents = [weights.clone(), card.clone(), b"{}".to_vec()];
    let files = vec![
        Upload::file(&weights_file, "model.safetensors").unwrap(),
        Upload::bytes("config.json", card),
        Upload::bytes("model_card.json", b"{}".to_vec()),
    ];
    let missing = Upload::file(&dir.path().join("none.bin"), "x").unwrap_err();
    assert!(missing.to_string().contains("none.bin"), "{missing}");
    let p = Publisher::new(&base, Some("hf_test")).unwrap();
    p.create_repo("streetvision/roadwork", false).unwrap();
    p.create_repo("streetvision/roadwork", false).unwrap(); // exists: fine
    let done = p
        .commit(
            "streetvision/roadwork",
            "main",
            &files,
            "roadwork v3",
            "acc 0.9",
        )
        .unwrap();
    assert_eq!(done.commit, "abc123");
    let modes: Vec<(String, bool)> = vec![
        ("model.safetensors".into(), true),
        ("config.json".into(), false),
        ("model_card.json".into(), false),
    ];
    assert_eq!(done.files, modes);
    {
        let st = store.lock().unwrap();
        assert!(st.unauthorised.is_empty(), "{:?}", st.unauthorised);
        assert_eq!(st.summary, "roadwork v3");
        for (f, bytes) in files.iter().zip(&contents) {
            assert_eq!(&st.files[&f.path_in_repo], bytes, "{}", f.path_in_repo);
        }
        assert_eq!(st.puts, 1);
    }
    // The same weights again: the server has them, nothing is uploaded.
    p.commit("streetvision/roadwork", "main", &files[..1], "again", "")
        .unwrap();
    assert_eq!(store.lock().unwrap().puts, 1);
    // No token, no publishing; a refused step is named.
    assert!(matches!(
        Publisher::new(&base, None),
        Err(PublishError::NoToken)
    ));
    let err = Publisher::new(&base, Some("hf_test"))
        .unwrap()
        .commit("nobody/none", "main", &files[..1], "x", "")
        .map(|_| ());
    assert!(err.is_ok(), "{err:?}");
    let bad = Publisher::new(&format!("{base}/nowhere"), Some("hf_test"))
        .unwrap()
        .create_repo("a/b", false)
        .unwrap_err()
        .to_string();
    assert!(bad.starts_with("create (") && bad.contains("404"), "{bad}");
}
