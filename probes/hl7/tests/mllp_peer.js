// A real MLLP listener for the hl7 integration tests, built on the npm
// package node-hl7-server (an independent HL7 v2 implementation; the test's
// CMake step installs a pinned version under the build tree).
//
//   node mllp_peer.js PORT [CERT_PEM KEY_PEM]
//
// Listens on 127.0.0.1:PORT (MLLP over TLS when a certificate is given). The receiving application (MSH-5) of each
// message scripts the answer, so one peer serves every case:
//   AA, AE, AR  acknowledge with that code (the library builds the ACK)
//   WRONG_ID    acknowledge AA, but for another control ID (MSA-2)
//   SILENT      read the message, never answer
// Every message received is logged as one JSON line (type, control ID,
// processing ID, patient ID) so a test can prove what reached the peer.
'use strict';
const { Server } = require('node-hl7-server');

const fs = require('fs');
const port = Number(process.argv[2]);
const opts = { bindAddress: '127.0.0.1' };
if (process.argv[4]) opts.tls = { cert: fs.readFileSync(process.argv[3]), key: fs.readFileSync(process.argv[4]) };
const server = new Server(opts);
const inbound = server.createInbound({ port }, async (req, res) => {
  const msg = req.getMessage();
  const script = msg.get('MSH.5').toString();
  console.log(JSON.stringify({
    received: `${msg.get('MSH.9.1').toString()}^${msg.get('MSH.9.2').toString()}`,
    control_id: msg.get('MSH.10').toString(),
    processing_id: msg.get('MSH.11').toString(),
    version: msg.get('MSH.12').toString(),
    patient_id: msg.get('PID.3.1').toString(),
    script,
  }));
  if (script === 'SILENT') return;
  if (script === 'WRONG_ID') {
    msg.set('MSH.10', 'NOT-YOUR-MESSAGE');  // the ACK's MSA-2 is taken from MSH-10
    await res.sendResponse('AA');
    return;
  }
  await res.sendResponse(['AE', 'AR'].includes(script) ? script : 'AA');
});
inbound.on('listen', () => console.log(`listening on 127.0.0.1:${port}`));
inbound.on('error', (e) => { console.error(`listener error: ${e.message}`); process.exit(1); });
const stop = () => { inbound.close().then(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
