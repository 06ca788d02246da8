// Package coze is a small client for the one Coze OpenAPI call this project
// makes: DELETE /v1/conversations/{id}.
//
// Every call yields a [Result]: the HTTP status, the body's code and msg, the
// log id Coze support asks for (body detail.logid, else the X-Tt-Logid
// header), the server's Retry-After, and a [Class] that tells the caller what
// to do next. The classification follows the documented error-code table and,
// where the body says nothing useful (a gateway's HTML page, a cut or
// oversized body, no answer at all), the HTTP status or the network error.
//
// Bodies are read up to a bound ([WithMaxBodyBytes]) and each request has a
// timeout ([WithTimeout]) that also covers a body trickled byte by byte. The
// token comes from a [TokenSource] and never appears in an error.
//
// Package cozetest is a fake of the API for tests, benchmarks and demos.
package coze
