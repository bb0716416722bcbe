//! The token verifier. Three kinds of input: raw strings as a client could send them, and tokens
//! whose header and claims come from the fuzzer, signed with the server's key or with another one.
//! A token is accepted only if it is HS256, signed with the server's key, unexpired and not issued
//! in the future.
#![no_main]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chatd::domain::accounts::decode_claims;
use jsonwebtoken::{Algorithm, EncodingKey, crypto::sign, get_current_timestamp};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-fuzz";
const OTHER_SECRET: &[u8] = b"another secret that the server does not know";

#[derive(Deserialize)]
struct Alg {
    alg: Value,
}

#[derive(Deserialize)]
struct Exp {
    exp: Value,
}

fn token(header: &[u8], claims: &[u8], secret: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = sign(input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256).expect("HMAC signs anything");
    format!("{input}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            // A raw token: nothing a client can type without the key gets in.
            let raw = String::from_utf8_lossy(rest);
            if let Ok(claims) = decode_claims(&raw, SECRET) {
                panic!("a token not signed by the server was accepted: {claims:?}");
            }
        }
        mode => {
            let split = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
            let (header, claims) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
            let secret = if mode == 1 { SECRET } else { OTHER_SECRET };
            let accepted = decode_claims(&token(header, claims, secret), SECRET);
            let Ok(accepted) = accepted else { return };
            assert_eq!(secret, SECRET, "a token signed with another key was accepted");
            // Read back only the fields that matter, the way the verifier reads them: serde skips
            // the others unchecked (they may hold invalid UTF-8 or numbers out of any range).
            let header: Alg = serde_json::from_slice(header).expect("an accepted header has one alg");
            assert_eq!(header.alg, "HS256", "accepted a token whose header says alg {}", header.alg);
            let claims: Exp = serde_json::from_slice(claims).expect("accepted claims have one exp");
            assert!(claims.exp.is_u64(), "accepted a token whose exp is {}", claims.exp);
            assert!(accepted.exp.saturating_add(5) >= get_current_timestamp(), "accepted an expired token: {accepted:?}");
            assert!(accepted.iat <= get_current_timestamp() + 5, "accepted a token issued in the future: {accepted:?}");
        }
    }
});
