// The official AWS Encryption SDK (JavaScript, @aws-crypto/client-node) as an oracle for
// lethe's message format. Tests only.
//   node oracle.mjs encrypt --public PEM --ns NS --name NAME [--frame N] [--context k=v]... --in F --out F
//   node oracle.mjs decrypt --private PEM --ns NS --name NAME --in F --out F [--context-out F]
import {
  buildClient, CommitmentPolicy, RawRsaKeyringNode, AlgorithmSuiteIdentifier,
} from '@aws-crypto/client-node';
import { readFileSync, writeFileSync } from 'node:fs';

const [command, ...rest] = process.argv.slice(2);
const opts = { context: [] };
for (let i = 0; i < rest.length; i += 2) {
  const key = rest[i].replace(/^--/, '');
  if (key === 'context') opts.context.push(rest[i + 1]);
  else opts[key] = rest[i + 1];
}

const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const rsaKey = {};
if (opts.public) rsaKey.publicKey = readFileSync(opts.public, 'utf8');
if (opts.private) rsaKey.privateKey = readFileSync(opts.private, 'utf8');
const keyring = new RawRsaKeyringNode({
  keyName: opts.name, keyNamespace: opts.ns, rsaKey, oaepHash: 'sha256',
});

try {
  if (command === 'encrypt') {
    const encryptionContext = {};
    for (const pair of opts.context) {
      const eq = pair.indexOf('=');
      encryptionContext[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    const { result } = await encrypt(keyring, readFileSync(opts.in), {
      suiteId: AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY,
      frameLength: Number(opts.frame ?? 4096),
      encryptionContext,
    });
    writeFileSync(opts.out, result);
  } else if (command === 'decrypt') {
    const { plaintext, messageHeader } = await decrypt(keyring, readFileSync(opts.in));
    writeFileSync(opts.out, plaintext);
    if (opts['context-out']) {
      writeFileSync(opts['context-out'], JSON.stringify({
        suiteId: messageHeader.suiteId,
        frameLength: messageHeader.frameLength,
        encryptionContext: messageHeader.encryptionContext,
      }));
    }
  } else {
    throw new Error(`unknown command ${command}`);
  }
} catch (e) {
  console.error(`oracle: ${e.message}`);
  process.exit(1);
}
