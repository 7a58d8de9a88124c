// Package api owns the shapes of ferry's control API: the operation names
// (ops.go), the requests, responses and errors of the FSx operations ferry
// serves (data repository associations, data repository tasks, file
// systems), with FSx's exact JSON member names so that scripts and JMESPath
// queries written for `aws fsx` work unchanged, the shapes of ferry's own
// status (status.go), and the client of the daemon's socket (client.go).
//
// Sources for names, member order and enum values: the FSx service model
// (botocore/data/fsx/2018-03-01/service-2.json, the same model aws-sdk-go-v2
// service/fsx/types is generated from). Struct fields are declared in the
// model's member order because `--output json` prints members in that order.
//
// Decisions where FSx or the aws CLI leave room:
//   - Timestamps (CreationTime, StartTime, EndTime, LastUpdatedTime) are JSON
//     strings in the form aws CLI v2 prints by default (cli_timestamp_format
//     iso8601: Python's datetime.isoformat() in the local zone), e.g.
//     "2024-01-02T03:04:05.123000+00:00", microseconds only when non-zero. The
//     FSx wire form (epoch seconds as a JSON number, which aws CLI v1 prints
//     unchanged) is accepted on input. See Time.
//   - ResourceARN uses the partition "ferry", region "local" and account
//     000000000000 (arn:ferry:fsx:local:000000000000:association/fs-…/dra-…):
//     it matches FSx's ARN pattern but can never be mistaken for an AWS ARN.
//   - Errors travel as {"__type": Code, "Message": …} like FSx's JSON protocol;
//     HTTP statuses are chosen per code (see APIError.HTTPStatus), clients
//     rely on __type only.
//   - ferry-only facts about a file system (store directory, mount point,
//     control socket) live under the member "FerryConfiguration", beside
//     FSx's own LustreConfiguration, so no FSx name changes meaning.
package api
