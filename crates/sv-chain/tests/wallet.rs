//! Wallets against the Python `bittensor-wallet` 4.1.1: its encrypted coldkey and key files
//! (`tools/gen_axon_fixtures.py`) read here give its addresses; files written here are
//! read by it (through `SV_TEST_PYTHON`) with the same addresses; signatures verify both
//! ways; the password variable it sets is decoded as it encodes it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sv_axon::verify::verify_signature;
use sv_chain::wallet::{Password, decode_python_password, encrypt_nacl, python_password_var};
use sv_chain::{ChainError, Wallet};
use sv_tests::fixture;

const PASSWORD: &str = "correct horse battery";

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("axon/wallets/expected.json")).unwrap()).unwrap()
}

#[test]
fn the_python_wallets_encrypted_coldkey_opens_with_its_password_only() {
    let wallet = Wallet::new(&fixture("axon/wallets"), "fixture");
    let want = expected()["coldkey"]["ss58"].as_str().unwrap().to_string();
    assert_eq!(wallet.coldkeypub().unwrap(), want);
    let key = wallet.coldkey(&Password::Given(PASSWORD.into())).unwrap();
    assert_eq!(key.ss58, want);
    match wallet.coldkey(&Password::Given("wrong".into())) {
        Err(ChainError::WrongPassword(p)) => assert!(p.ends_with("fixture/coldkey"), "{p}"),
        other => panic!("{other:?}"),
    }
    // Hotkeys read the same way as in sv-axon.
    let hot = wallet.hotkey("phrase").unwrap();
    assert_eq!(hot.ss58, expected()["phrase"]["ss58"].as_str().unwrap());
    // Missing files and legacy formats are named.
    let dir = tempfile::tempdir().unwrap();
    let w = Wallet::new(dir.path(), "w");
    let err = w
        .coldkey(&Password::Given(PASSWORD.into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("w/coldkey"), "{err}");
    std::fs::create_dir_all(w.dir()).unwrap();
    std::fs::write(w.dir().join("coldkey"), b"$ANSIBLE_VAULT;1.1;AES256\n3031").unwrap();
    let err = w.coldkey(&Password::Given(PASSWORD.into())).unwrap_err();
    assert!(matches!(err, ChainError::Unsupported(_)), "{err}");
}

#[test]
fn the_python_password_variable_is_read_as_it_is_written() {
    // Names and the value as bittensor-wallet 4.1.1 made them.
    assert_eq!(
        python_password_var(Path::new("/tmp/wtest/fixture/coldkey")),
        "BT_PW__TMP_WTEST_FIXTURE_COLDKEY"
    );
    assert_eq!(
        python_password_var(Path::new("/root/.bittensor/wallets/default/coldkey")),
        "BT_PW__ROOT__BITTENSOR_WALLETS_DEFAULT_COLDKEY"
    );
    assert_eq!(
        decode_python_password(
            "ITstIjI8K3QlPy0kMWUxNSsyLCot",
            "BT_PW__TMP_WTEST_FIXTURE_COLDKEY"
        )
        .as_deref(),
        Some(PASSWORD)
    );
}

#[test]
fn files_written_here_are_read_by_the_python_wallet() {
    let python = sv_tests::test_python();
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::new(dir.path(), "made");
    let (hot, mnemonic) = wallet.create_hotkey("miner", false).unwrap();
    assert_eq!(mnemonic.split_whitespace().count(), 12);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(wallet.hotkey_path("miner"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(matches!(
        wallet.create_hotkey("miner", false),
        Err(ChainError::Write(_))
    ));
    // A coldkey sealed here with the fixture's key.
    let cold = Wallet::new(&fixture("axon/wallets"), "fixture")
        .coldkey(&Password::Given(PASSWORD.into()))
        .unwrap();
    let plain = serde_json::json!({
        "secretPhrase": "legal winner thank year wave sausage worth useful legal winner thank yellow",
        "ss58Address": cold.ss58,
    });
    std::fs::write(
        wallet.dir().join("coldkey"),
        encrypt_nacl(&serde_json::to_vec(&plain).unwrap(), PASSWORD),
    )
    .unwrap();
    let message = "signed by streetvision-rs";
    let ours = hot.sign(message.as_bytes());
    let script = format!(
        r#"
import json, sys
from bittensor_wallet import Keyfile, Keypair
hot = Keyfile(sys.argv[1] + "/made/hotkeys/miner", name="miner").get_keypair()
cold = Keyfile(sys.argv[1] + "/made/coldkey", name="coldkey").get_keypair(password="{PASSWORD}")
hotpub = Keyfile(sys.argv[1] + "/made/hotkeys/minerpub.txt", name="minerpub").get_keypair()
ok = hotpub.ss58_address == hot.ss58_address and hot.verify("{message}", bytes.fromhex(sys.argv[2][2:]))
print(json.dumps({{"hot": hot.ss58_address, "cold": cold.ss58_address, "ours_verifies": ok,
                  "theirs": "0x" + hot.sign("{message}").hex()}}))
"#
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .arg(dir.path())
        .arg(&ours)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["hot"], hot.ss58.as_str());
    assert_eq!(r["cold"], cold.ss58.as_str());
    assert_eq!(r["ours_verifies"], true);
    verify_signature(&hot.ss58, message, r["theirs"].as_str().unwrap()).unwrap();
}

#[test]
fn network_names_map_as_the_sdk_maps_them() {
    let out = Command::new(sv_tests::test_python())
        .args([
            "-c",
            "import json, os; os.environ.pop('BT_SUBTENSOR_CHAIN_ENDPOINT', None); \
             from bittensor.core import settings; print(json.dumps(settings.NETWORK_MAP))",
        ])
        .env_remove("BT_SUBTENSOR_CHAIN_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sdk: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let sdk = sdk.as_object().unwrap();
    assert_eq!(sdk.len(), sv_chain::NETWORKS.len());
    for (name, url) in sv_chain::NETWORKS {
        assert_eq!(sdk[name], url, "{name}");
        assert_eq!(sv_chain::network_endpoint(name).as_deref(), Some(url));
    }
    assert_eq!(
        sv_chain::network_endpoint("ws://10.1.2.3:9944").as_deref(),
        Some("ws://10.1.2.3:9944")
    );
    assert_eq!(sv_chain::network_endpoint("mainnet"), None);
}
