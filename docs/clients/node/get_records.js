#!/usr/bin/env node
// Read a person's records through a samverka gateway from Node.js, with
// @grpc/grpc-js and @grpc/proto-loader over the repository's .proto files.
//
// Usage (from the repository root; Node.js 18 or newer):
//
//     cargo run -- demo --serve --dir /tmp/samverka-demo      # in one terminal
//     (cd docs/clients/node && npm ci)                        # once
//     node docs/clients/node/get_records.js /tmp/samverka-demo/demo.toml
//
// Everything the client needs (the gateway's address, the trust anchor, the
// agency's certificate and key, the demo person) is read from demo.toml.
// Each can be given instead, or on top of it:
//
//     node docs/clients/node/get_records.js --gateway localhost:PORT \
//         --ca certs/ca.pem --cert certs/agency-reader.pem --key certs/agency-reader.key \
//         --subject 199003142388 --purpose study_guidance \
//         --types education.course_result,employment.period
//
// It prints each record as one line of JSON, then each source's outcome
// ("employment OK 2") and the audit entry. A refusal is printed decoded from
// the `grpc-status-details-bin` trailer (google.rpc.Status with its
// google.rpc.ErrorInfo and google.rpc.BadRequest details), and the exit
// code is 1; a bad command line or a file that cannot be read exits 2.
//
// The release check comes first and the file uses no syntax newer than
// ES2015 (which Node.js 6 reads), so that an old release gets that message
// rather than a syntax error.

'use strict';

var MIN_NODE = 18;
if (Number(process.versions.node.split('.')[0]) < MIN_NODE) {
  console.error(
    'get_records.js: needs Node.js ' + MIN_NODE + ' or newer; this is Node.js ' +
      process.versions.node + '.'
  );
  process.exit(2);
}

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

function fail(message) {
  console.error(`get_records.js: ${message}`);
  process.exit(2);
}

let grpc, protoLoader, TOML;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
  TOML = require('smol-toml');
} catch (e) {
  fail(`${e.message.split('\n')[0]}: run \`npm ci\` in ${__dirname} first`);
}

const USAGE = `usage: node get_records.js [DEMO_TOML] [--gateway HOST:PORT] [--ca PEM]
       [--cert PEM --key PEM] [--subject ID] [--purpose CODE] [--types T,...]
       [--proto DIR] [--timeout SECONDS]`;

// The command line: demo.toml (default /tmp/samverka-demo/demo.toml unless
// --gateway, --ca, --cert and --key are all given), and options that
// override what it says.
function settings(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        gateway: { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        subject: { type: 'string' },
        purpose: { type: 'string' },
        types: { type: 'string' },
        proto: { type: 'string' },
        timeout: { type: 'string', default: '5' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    fail(`${e.message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length > 1) fail(`one demo.toml at most\n${USAGE}`);
  const explicit = values.gateway && values.ca && values.cert && values.key;
  const demoPath = positionals[0] || (explicit ? null : '/tmp/samverka-demo/demo.toml');
  let demo = {};
  if (demoPath) {
    try {
      demo = TOML.parse(fs.readFileSync(demoPath, 'utf8'));
    } catch (e) {
      fail(`${demoPath}: ${e.message}`);
    }
  }
  const section = (name) => demo[name] || {};
  const pick = (value, fallback, what) => {
    const v = value !== undefined ? value : fallback;
    if (v === undefined || v === null || v === '') {
      fail(`no ${what}: give --${what} or a demo.toml that has it\n${USAGE}`);
    }
    return v;
  };
  const types = values.types !== undefined ? values.types.split(',') : section('subject').record_types;
  return {
    // [agency] gateway is the address to call, by the name the gateway's
    // certificate holds (localhost:PORT); [gateway] address is where the
    // gateway listens (127.0.0.1:PORT), for a demo.toml without the former.
    gateway: pick(values.gateway, section('agency').gateway || section('gateway').address, 'gateway'),
    ca: pick(values.ca, section('gateway').ca_cert, 'ca'),
    cert: pick(values.cert, section('agency').cert, 'cert'),
    key: pick(values.key, section('agency').key, 'key'),
    subject: pick(values.subject, section('subject').id, 'subject'),
    purpose: pick(values.purpose, section('subject').purpose, 'purpose'),
    types: pick(types, undefined, 'types'),
    proto: values.proto || path.resolve(__dirname, '..', '..', '..', 'proto', 'proto'),
    timeoutSeconds: positiveNumber(values.timeout, 'timeout'),
  };
}

function positiveNumber(text, what) {
  const n = Number(text);
  if (!(n > 0)) fail(`--${what} ${text}: not a positive number`);
  return n;
}

function read(file) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    return fail(e.message);
  }
}

// The repository's .proto files: the service and its messages, and the
// google.rpc messages a refusal's details are made of.
function load(protoDir) {
  try {
    return protoLoader.loadSync(
      ['samverka/v1/exchange.proto', 'google/rpc/status.proto', 'google/rpc/error_details.proto'],
      { includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }
    );
  } catch (e) {
    return fail(`${e.message} (the .proto files are under proto/proto of the repository; --proto DIR)`);
  }
}

// A refusal, decoded: the gRPC status and, from the grpc-status-details-bin
// trailer, the google.rpc.Status with its ErrorInfo (why, and the audit
// entry that recorded the refusal) and BadRequest (which field) details.
function printRefusal(error, protos) {
  const code = grpc.status[error.code] || error.code;
  console.log(`refused: ${code} "${error.details}"`);
  const trailer = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  if (trailer.length === 0) {
    console.log('  (no error details)');
    return;
  }
  const status = protos['google.rpc.Status'].deserialize(trailer[0]);
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    const type = protos[typeName];
    if (!type || !type.deserialize) {
      console.log(`  ${typeName} (not decoded)`);
      continue;
    }
    const detail = type.deserialize(any.value);
    if (typeName === 'google.rpc.ErrorInfo') {
      console.log(`  reason ${detail.reason} (domain ${detail.domain})`);
      for (const [key, value] of Object.entries(detail.metadata)) {
        console.log(`  ${key} ${value}`);
      }
    } else if (typeName === 'google.rpc.BadRequest') {
      for (const v of detail.field_violations) {
        console.log(`  field ${v.field}: ${v.description}`);
      }
    } else {
      console.log(`  ${typeName} ${JSON.stringify(detail)}`);
    }
  }
}

function main() {
  const s = settings(process.argv.slice(2));
  const protos = load(s.proto);
  const { RecordExchange } = grpc.loadPackageDefinition(protos).samverka.v1;
  const credentials = grpc.credentials.createSsl(read(s.ca), read(s.key), read(s.cert));
  const client = new RecordExchange(s.gateway, credentials);
  const request = { subject_id: s.subject, record_types: s.types, purpose: s.purpose };
  const deadline = new Date(Date.now() + s.timeoutSeconds * 1000);
  client.GetRecords(request, { deadline }, (error, answer) => {
    client.close();
    if (error) {
      printRefusal(error, protos);
      process.exitCode = 1;
      return;
    }
    for (const record of answer.records) {
      console.log(JSON.stringify(record));
    }
    for (const o of answer.outcomes) {
      console.log(`${o.source_name} ${o.status} ${o.record_count}`);
    }
    console.log(`audit entry ${answer.audit_id}`);
  });
}

main();
