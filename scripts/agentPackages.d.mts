// Types of scripts/agentPackages.mjs, for the package tests.
export interface PackageArch {
  platform: 'linux-x64' | 'linux-arm64';
  deb: 'amd64' | 'arm64';
  rpm: 'x86_64' | 'aarch64';
}
export interface PackageBuild {
  work: string;
  out: string;
  version: string;
  arch: PackageArch;
  compression?: 'xz' | 'none';
}
export const EXECUTABLES: string;
export const LINUX: string;
export const WINDOWS_INSTALLER: string;
export const WINDOWS_PACKAGING: string;
export const ARCHES: readonly PackageArch[];
export function packageVersion(version: string): string;
export function executable(platform: string): string;
export function debPackage(build: PackageBuild): string;
export function rpmPackage(build: PackageBuild): string;
export function windowsZip(build: { work: string; out: string; version: string }): string;
/** An MSI's ProductVersion (a.b.c) for a package.json version. */
export function msiVersion(version: string): string;
export function windowsServiceHost(build: { work: string }): string;
/** `version` names the file (a package version); `productVersion` is package.json's, made into an MSI version. */
export function windowsMsi(build: { work: string; out: string; version: string; productVersion: string }): string;
export function outputNames(version: string): string[];
