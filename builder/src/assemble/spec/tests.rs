use super::*;

fn error_of(yaml: &str) -> String {
    let located = Located::read(yaml).unwrap();
    parse(yaml, &located).unwrap_err().render(Path::new("bundle.yaml"))
}

#[test]
fn a_wrong_field_is_named_with_its_line_and_the_choice_meant() {
    let msg = error_of("name: x\nversion: '1'\nmembers:\n  - name: a\n    kind: image\n    path: a.tar\n    compression: gzp\n");
    assert!(msg.starts_with("bundle.yaml:7: members[0].compression: unknown variant `gzp`"), "{msg}");
    let msg = error_of("name: x\nversion: '1'\nmembers:\n  - name: a\n    kind: imag\n    path: a.tar\n");
    assert!(msg.starts_with("bundle.yaml:5: members[0].kind: unknown variant `imag`") && msg.contains("did you mean `image`"), "{msg}");
}

#[test]
fn a_missing_field_is_named() {
    let msg = error_of("name: x\nmembers: []\n");
    assert!(msg.contains("missing field `version`"), "{msg}");
}

#[test]
fn tabs_in_the_indentation_are_found_by_line_and_column() {
    assert_eq!(tab_in_indentation("a:\n  b: 1\n\t- c\n"), Some((3, 1)));
    assert_eq!(tab_in_indentation("a: \"x\ty\"\n"), None, "a tab inside a value is no indentation");
}
