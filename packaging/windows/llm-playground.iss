; Inno Setup 6 script for LLM Playground (built by packaging/windows/build.ps1).
;   iscc /DFlavour=lite /DAppVersion=0.1.0 /DSourceDir=<bundle dir> /DOutputDir=<dir> llm-playground.iss
; Installs the PyInstaller one-dir bundle, adds Start-menu entries (app + uninstaller),
; an optional desktop icon, and registers the uninstaller in "Apps & features".

#ifndef Flavour
  #define Flavour "lite"
#endif
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\build\dist-" + Flavour + "\llm-playground"
#endif
#ifndef OutputDir
  #define OutputDir "..\out"
#endif
#ifndef IconFile
  #define IconFile "..\build\llm-playground.ico"
#endif

#define AppName "LLM Playground"
#define AppExe "llm-playground.exe"

[Setup]
AppId={{6F1C2B8E-4F5A-4C7B-9A43-2D1E8B6C5F10}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion} ({#Flavour})
AppPublisher=LLM Playground developers
DefaultDirName={autopf}\LLM Playground
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=llm-playground-{#Flavour}-{#AppVersion}-windows-x64-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName} ({#Flavour})
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Files the bundle may write next to itself (Python caches); user data lives in %APPDATA% and stays.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
